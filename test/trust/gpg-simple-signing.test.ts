import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basaltAsync, basaltAsyncOk } from './async-cli.js';
import { makeImageLayout } from '../harness/layouts.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { requireTool, run, tempDir } from '../harness/tools.js';

/**
 * Simple signing (containers-signature(5) with OpenPGP) against skopeo, through the
 * trust code's signedBy evaluation and the OpenPGP seam (src/trust/pgp.ts, lookaside.ts).
 * skopeo standalone-sign ↔ basalt verify --gpg-keyring, basalt sign --gpg-key ↔ skopeo
 * standalone-verify, and a signedBy policy enforced by image copy.
 */
/** A hung registry exchange fails the test instead of stalling the run. */
const TEST_TIMEOUT_MS = 300_000;
let registry: TestRegistry;
let work: string;
let gnupg: string;
let fingerprint: string;
let keyring: string;
let otherKeyring: string;
let env: NodeJS.ProcessEnv;
const tls = '--tls-verify=false';

function gpg(home: string, args: string[]): string {
  return run('gpg', ['--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...args]);
}

async function makeKey(name: string): Promise<{ home: string; fingerprint: string; keyring: string }> {
  const home = join(work, `gnupg-${name}`);
  await mkdir(home, { mode: 0o700 });
  gpg(home, ['--quick-gen-key', `${name} <${name}@example.com>`, 'ed25519', 'sign', 'never']);
  const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(gpg(home, ['--with-colons', '--list-secret-keys']))?.[1];
  assert.ok(fpr);
  const ring = join(work, `${name}.gpg`);
  gpg(home, ['--output', ring, '--export', fpr]);
  return { home, fingerprint: fpr, keyring: ring };
}

before(async () => {
  requireTool('gpg');
  requireTool('skopeo');
  registry = await startRegistry({ flavour: 'open' });
  work = await tempDir('trust-gpg');
  const signer = await makeKey('release');
  gnupg = signer.home;
  fingerprint = signer.fingerprint;
  keyring = signer.keyring;
  otherKeyring = (await makeKey('stranger')).keyring;
  env = { BASALT_STORE: join(work, 'store'), HOME: work, GNUPGHOME: gnupg };
  await makeImageLayout(join(work, 'a'), 'img', [{ 'etc/release': 'A\n' }]);
  await basaltAsyncOk(['image', 'copy', '-q', '--insecure-policy', tls, `oci:${join(work, 'a')}:img`, `docker://${registry.host}/team/app:1`], { env });
});

after(async () => {
  await registry?.stop();
});

test('skopeo standalone-sign → basalt verify --gpg-keyring accepts; another keyring is refused', { timeout: TEST_TIMEOUT_MS }, async () => {
  const image = `docker://${registry.host}/team/app:1`;
  const manifest = join(work, 'manifest.json');
  await writeFile(manifest, await basaltAsyncOk(['image', 'inspect', '--raw', tls, image], { env }));
  const digest = (await basaltAsyncOk(['image', 'digest', tls, image], { env })).trim();
  const lookaside = join(work, 'lookaside-skopeo');
  const sigDir = join(lookaside, 'team/app@' + digest.replace(':', '='));
  await mkdir(sigDir, { recursive: true });
  run('skopeo', ['standalone-sign', '--output', join(sigDir, 'signature-1'), manifest, `${registry.host}/team/app:1`, fingerprint], { env: { ...process.env, GNUPGHOME: gnupg } });
  const ok = JSON.parse(await basaltAsyncOk(['verify', tls, image, '--gpg-keyring', keyring, '--lookaside', lookaside, '--format', 'json'], { env })) as { accepted: boolean; requirements: { signatures: { id: string }[] }[] };
  assert.equal(ok.accepted, true);
  assert.equal(ok.requirements[0]?.signatures[0]?.id.toUpperCase(), fingerprint);
  const wrong = await basaltAsync(['verify', tls, image, '--gpg-keyring', otherKeyring, '--lookaside', lookaside], { env });
  assert.equal(wrong.status, 8, wrong.stderr);
});

test('basalt sign --gpg-key → skopeo standalone-verify accepts; a signedBy policy lets image copy through', { timeout: TEST_TIMEOUT_MS }, async () => {
  const image = `docker://${registry.host}/team/app:1`;
  const lookaside = join(work, 'lookaside-basalt');
  await basaltAsyncOk(['sign', tls, image, '--gpg-key', fingerprint, '--gpg-homedir', gnupg, '--lookaside', lookaside], { env });
  const digest = (await basaltAsyncOk(['image', 'digest', tls, image], { env })).trim();
  const sigDir = join(lookaside, 'team/app@' + digest.replace(':', '='));
  const files = await readdir(sigDir);
  assert.deepEqual(files, ['signature-1']);
  const manifest = join(work, 'manifest-2.json');
  await writeFile(manifest, await basaltAsyncOk(['image', 'inspect', '--raw', tls, image], { env }));
  const out = run('skopeo', ['standalone-verify', manifest, `${registry.host}/team/app:1`, fingerprint, join(sigDir, 'signature-1')], { env: { ...process.env, GNUPGHOME: gnupg } });
  assert.match(out, new RegExp(`Signature verified.*${digest}`));
  // signedBy through registries.d lookaside, enforced by the copy.
  const dir = join(work, 'registries.d');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'lookaside.yaml'), `docker:\n  ${registry.host}/team:\n    lookaside: file://${lookaside}\n`);
  const policy = join(work, 'policy.json');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'reject' }], transports: { docker: { [`${registry.host}/team`]: [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: keyring }] } } }));
  // An OCI layout holds no simple signatures: as skopeo, copying a signed image there needs --remove-signatures.
  const kept = await basaltAsync(['image', 'copy', '-q', tls, '--policy', policy, '--registries.d', dir, image, `oci:${join(work, 'copied')}:x`], { env });
  assert.equal(kept.status, 6, kept.stderr);
  await basaltAsyncOk(['image', 'copy', '-q', tls, '--policy', policy, '--registries.d', dir, '--remove-signatures', image, `oci:${join(work, 'copied')}:x`], { env });
  assert.ok((await readFile(join(work, 'copied', 'index.json'), 'utf8')).includes('"x"'));
  await writeFile(policy, JSON.stringify({ default: [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: otherKeyring }] }));
  const refused = await basaltAsync(['image', 'copy', '-q', tls, '--policy', policy, '--registries.d', dir, image, `oci:${join(work, 'refused')}:x`], { env });
  assert.equal(refused.status, 8, refused.stderr);
});
