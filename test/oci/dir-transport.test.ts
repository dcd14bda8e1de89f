import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { basaltAsync, basaltAsyncOk, runAsync } from '../trust/async-cli.js';
import { makeImageLayout, makeIndexLayout } from '../harness/layouts.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { requireTool, run, tempDir } from '../harness/tools.js';

/**
 * skopeo's dir: transport against real skopeo (both directions), its failure paths, and
 * simple signatures carried by image copy and sync: dir: signature-N files and registry
 * lookaside (registries.d lookaside-staging), checked with real gpg and skopeo
 * standalone-verify.
 */
const TEST_TIMEOUT_MS = 300_000;
const VERSION = 'Directory Transport Version: 1.1\n';
let registry: TestRegistry;
let work: string;
let env: NodeJS.ProcessEnv;
let gnupg: string;
let fingerprint: string;
let keyring: string;
let image: string; // an OCI layout image to start from
const tls = '--tls-verify=false';
const ip = '--insecure-policy';

/** Seconds since `start`, for the timings each test prints. */
function timeBudget(_name: string): () => string {
  const start = Date.now();
  return () => ((Date.now() - start) / 1000).toFixed(1);
}

async function skopeo(args: string[]): Promise<string> {
  const r = await runAsync('skopeo', ['--insecure-policy', ...args], { GNUPGHOME: gnupg });
  if (r.status !== 0) throw new Error(`skopeo ${args.join(' ')} exited ${r.status}:\n${r.out}`);
  return r.out;
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Files of a directory, sorted; [] when it does not exist. */
async function files(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

before(async () => {
  requireTool('skopeo');
  requireTool('gpg');
  registry = await startRegistry({ flavour: 'open' });
  work = await tempDir('dir-transport');
  env = { BASALT_STORE: join(work, 'store'), HOME: work };
  gnupg = join(work, 'gnupg');
  await mkdir(gnupg, { mode: 0o700 });
  const gpg = (args: string[]): string => run('gpg', ['--homedir', gnupg, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...args]);
  gpg(['--quick-gen-key', 'Release <release@example.com>', 'ed25519', 'sign', 'never']);
  fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(gpg(['--with-colons', '--list-secret-keys']))?.[1] ?? '';
  assert.ok(fingerprint);
  keyring = join(work, 'release.gpg');
  gpg(['--output', keyring, '--export', fingerprint]);
  env.GNUPGHOME = gnupg;
  await makeImageLayout(join(work, 'layout'), 'v1', [{ 'etc/one': '1\n' }, { 'etc/two': '2\n' }]);
  image = `oci:${join(work, 'layout')}:v1`;
});

after(async () => {
  await registry?.stop();
  if (gnupg) await runAsync('gpgconf', ['--homedir', gnupg, '--kill', 'gpg-agent']);
});

test('skopeo copy to dir: → basalt reads it; basalt writes dir: → skopeo copies it to a registry and inspects it', { timeout: TEST_TIMEOUT_MS }, async () => {
  const done = timeBudget('dir: interop with skopeo');
  const fromSkopeo = join(work, 'skopeo-dir');
  await skopeo(['copy', image, `dir:${fromSkopeo}`]);
  const digest = (await basaltAsyncOk(['image', 'digest', `dir:${fromSkopeo}`], { env })).trim();
  assert.equal(digest, sha256(await readFile(join(fromSkopeo, 'manifest.json'))));
  await basaltAsyncOk(['image', 'copy', '-q', ip, `dir:${fromSkopeo}`, `oci:${join(work, 'back')}:x`], { env });
  assert.equal((await basaltAsyncOk(['image', 'digest', `oci:${join(work, 'back')}:x`], { env })).trim(), digest, 'digest preserved');

  // basalt's dir: output has skopeo's layout, byte for byte in the names and the version file.
  const fromBasalt = join(work, 'basalt-dir');
  await basaltAsyncOk(['image', 'copy', '-q', ip, image, `dir:${fromBasalt}`], { env });
  assert.deepEqual(await files(fromBasalt), await files(fromSkopeo));
  assert.equal(await readFile(join(fromBasalt, 'version'), 'utf8'), VERSION);
  assert.deepEqual(await files(work).then((l) => l.filter((n) => n.startsWith('.'))), [], 'no staging directory left behind');
  const ref = `${registry.host}/dir/from-basalt:1`;
  await skopeo(['copy', '--dest-tls-verify=false', `dir:${fromBasalt}`, `docker://${ref}`]);
  const inspected = JSON.parse(await skopeo(['inspect', tls, `docker://${ref}`])) as { Digest: string; Layers: string[] };
  assert.equal(inspected.Digest, digest);
  assert.equal(inspected.Layers.length, 2);
  // And basalt reads the registry copy back into a dir: that skopeo inspects.
  const again = join(work, 'again-dir');
  await basaltAsyncOk(['image', 'copy', '-q', ip, tls, `docker://${ref}`, `dir:${again}`], { env });
  assert.equal((JSON.parse(await skopeo(['inspect', `dir:${again}`])) as { Digest: string }).Digest, digest);
  console.log(`dir: interop: ${done()} s`);
});

test('a multi-platform index with --all: <hex>.manifest.json per instance, read back by skopeo', { timeout: TEST_TIMEOUT_MS }, async () => {
  const layout = join(work, 'index-layout');
  const index = await makeIndexLayout(layout, 'multi', [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }]);
  const out = join(work, 'index-dir');
  await basaltAsyncOk(['image', 'copy', '-q', ip, '--all', `oci:${layout}:multi`, `dir:${out}`], { env });
  assert.equal(sha256(await readFile(join(out, 'manifest.json'))), index.digest);
  assert.equal((await files(out)).filter((n) => n.endsWith('.manifest.json')).length, 2);
  const skopeoOut = join(work, 'index-skopeo');
  await skopeo(['copy', '--all', `dir:${out}`, `oci:${skopeoOut}:m`]);
  await skopeo(['copy', '--all', `oci:${skopeoOut}:m`, `dir:${join(work, 'index-skopeo-dir')}`]);
  assert.deepEqual(await files(join(work, 'index-skopeo-dir')), await files(out));
  assert.equal((await basaltAsyncOk(['image', 'digest', `dir:${join(work, 'index-skopeo-dir')}`], { env })).trim(), index.digest);

  // An instance's simple signature (<hex>.signature-N) travels with --all: into a dir: as
  // skopeo copies it, and into the registry lookaside under the instance's digest.
  const instance = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as { manifests: { digest: string }[] };
  const child = instance.manifests[0]!.digest;
  const hex = child.slice('sha256:'.length);
  const identity = `${registry.host}/index/app:1`;
  await skopeo(['standalone-sign', '--output', join(out, `${hex}.signature-1`), join(out, `${hex}.manifest.json`), identity, fingerprint]);
  const sig = await readFile(join(out, `${hex}.signature-1`));
  const copied = join(work, 'index-signed-copy');
  await basaltAsyncOk(['image', 'copy', '-q', ip, '--all', `dir:${out}`, `dir:${copied}`], { env });
  assert.deepEqual(await readFile(join(copied, `${hex}.signature-1`)), sig);
  const bySkopeo = join(work, 'index-signed-skopeo');
  await skopeo(['copy', '--all', `dir:${out}`, `dir:${bySkopeo}`]);
  assert.deepEqual(await files(bySkopeo), await files(copied), 'skopeo writes the same files');
  const staging = join(work, 'index-staging');
  const registriesD = join(work, 'index-registries.d');
  await mkdir(registriesD);
  await writeFile(join(registriesD, 'test.yaml'), `docker:\n  ${registry.host}/index:\n    lookaside-staging: file://${staging}\n`);
  await basaltAsyncOk(['image', 'copy', '-q', ip, tls, '--all', '--registries.d', registriesD, `dir:${copied}`, `docker://${identity}`], { env });
  assert.deepEqual(await readFile(join(staging, `index/app@sha256=${hex}`, 'signature-1')), sig);
  // Without --all only the picked instance is copied, as the top manifest: its signature becomes signature-1.
  const single = join(work, 'index-single');
  await basaltAsyncOk(['image', 'copy', '-q', ip, '--platform', 'linux/amd64', `dir:${copied}`, `dir:${single}`], { env });
  assert.equal(sha256(await readFile(join(single, 'manifest.json'))), child, 'the amd64 instance is the first one');
  assert.deepEqual(await readFile(join(single, 'signature-1')), sig);
});

test('a broken dir: source (missing, wrong-digest or truncated blob) fails naming the blob, and nothing is written', { timeout: TEST_TIMEOUT_MS }, async () => {
  const good = join(work, 'good-dir');
  await basaltAsyncOk(['image', 'copy', '-q', ip, image, `dir:${good}`], { env });
  const manifest = JSON.parse(await readFile(join(good, 'manifest.json'), 'utf8')) as { layers: { digest: string; size: number }[] };
  const layer = manifest.layers[1]!.digest.slice('sha256:'.length);
  const cases: [string, (dir: string) => Promise<void>, number, RegExp][] = [
    ['missing', async (d) => rm(join(d, layer)), 3, /blob sha256:[0-9a-f]{64} is missing/],
    ['wrong-digest', async (d) => {
      const bytes = await readFile(join(d, layer));
      bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
      await writeFile(join(d, layer), bytes);
    }, 5, /digest mismatch/],
    ['truncated', async (d) => truncate(join(d, layer), manifest.layers[1]!.size - 7), 5, /truncated/],
  ];
  for (const [name, damage, status, message] of cases) {
    const broken = join(work, `broken-${name}`);
    await cp(good, broken, { recursive: true });
    await damage(broken);
    for (const dest of [`oci:${join(work, `out-${name}`)}:x`, `dir:${join(work, `out-dir-${name}`)}`]) {
      const r = await basaltAsync(['image', 'copy', '-q', ip, `dir:${broken}`, dest], { env });
      assert.equal(r.status, status, `${name} → ${dest}: ${r.stderr}`);
      assert.match(r.stderr, message, name);
      assert.match(r.stderr, new RegExp(layer.slice(0, 12)), `${name}: the error names the blob`);
    }
    assert.equal(await stat(join(work, `out-${name}`)).catch(() => undefined), undefined, `${name}: no layout written`);
    assert.equal(await stat(join(work, `out-dir-${name}`)).catch(() => undefined), undefined, `${name}: no dir: written`);
  }
  assert.deepEqual((await files(work)).filter((n) => n.startsWith('.')), [], 'no staging directory left behind');
  // An aborted copy over an existing dir: image (of another image) leaves the old one as it was.
  await makeImageLayout(join(work, 'layout-other'), 'v2', [{ 'etc/three': '3\n' }]);
  const existing = join(work, 'existing-dir');
  await basaltAsyncOk(['image', 'copy', '-q', ip, `oci:${join(work, 'layout-other')}:v2`, `dir:${existing}`], { env });
  const before = await files(existing);
  const r = await basaltAsync(['image', 'copy', '-q', ip, `dir:${join(work, 'broken-truncated')}`, `dir:${existing}`], { env });
  assert.equal(r.status, 5, r.stderr);
  assert.deepEqual(await files(existing), before);
  await basaltAsyncOk(['image', 'copy', '-q', ip, `dir:${existing}`, `oci:${join(work, 'still-good')}:x`], { env });
  // A directory that is not a dir: image is never replaced.
  const other = join(work, 'not-an-image');
  await mkdir(other);
  await writeFile(join(other, 'precious.txt'), 'keep me\n');
  const refused = await basaltAsync(['image', 'copy', '-q', ip, image, `dir:${other}`], { env });
  assert.equal(refused.status, 2, refused.stderr);
  assert.deepEqual(await files(other), ['precious.txt']);
});

test('simple signatures: skopeo-signed dir: → basalt copy keeps them; → registry lookaside-staging; back to dir: by skopeo and basalt; verified by skopeo and basalt', { timeout: TEST_TIMEOUT_MS }, async () => {
  const done = timeBudget('dir: signatures');
  const identity = `${registry.host}/signed/app:1`;
  const signed = join(work, 'signed-dir');
  await skopeo(['copy', '--sign-by', fingerprint, '--sign-identity', identity, image, `dir:${signed}`]);
  assert.ok((await files(signed)).includes('signature-1'));
  const original = await readFile(join(signed, 'signature-1'));

  // dir: → dir: keeps the signature file; skopeo standalone-verify accepts it.
  const copied = join(work, 'signed-copy');
  const out = await basaltAsync(['image', 'copy', ip, `dir:${signed}`, `dir:${copied}`], { env });
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stderr, /Copied 1 simple signature/);
  assert.deepEqual(await readFile(join(copied, 'signature-1')), original);
  const digest = sha256(await readFile(join(copied, 'manifest.json')));
  const verified = await skopeo(['standalone-verify', join(copied, 'manifest.json'), identity, fingerprint, join(copied, 'signature-1')]);
  assert.match(verified, new RegExp(`Signature verified.*${digest}`));

  // A signedBy policy for the dir: transport reads signature-N from the directory.
  const policy = join(work, 'dir-policy.json');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'reject' }], transports: { dir: { '': [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: keyring, signedIdentity: { type: 'exactReference', dockerReference: identity } }] } } }));
  await basaltAsyncOk(['image', 'copy', '-q', '--policy', policy, `dir:${copied}`, `oci:${join(work, 'policy-ok')}:x`, '--remove-signatures'], { env });
  const unsigned = join(work, 'unsigned-dir');
  await basaltAsyncOk(['image', 'copy', '-q', ip, image, `dir:${unsigned}`], { env });
  const refused = await basaltAsync(['image', 'copy', '-q', '--policy', policy, `dir:${unsigned}`, `oci:${join(work, 'policy-refused')}:x`], { env });
  assert.equal(refused.status, 8, refused.stderr);
  assert.match(refused.stderr, /no simple signatures \(no signature-N files/);

  // dir: → registry: the signature lands in lookaside-staging, keyed by repository and digest.
  const staging = join(work, 'staging');
  const lookaside = join(work, 'lookaside');
  const registriesD = join(work, 'registries.d');
  await mkdir(registriesD);
  await writeFile(join(registriesD, 'test.yaml'), `docker:\n  ${registry.host}:\n    lookaside: file://${lookaside}\n    lookaside-staging: file://${staging}\n`);
  await basaltAsyncOk(['image', 'copy', '-q', ip, tls, '--registries.d', registriesD, `dir:${copied}`, `docker://${identity}`], { env });
  const stagedDir = join(staging, 'signed/app@' + digest.replace(':', '='));
  assert.deepEqual(await files(stagedDir), ['signature-1']);
  assert.deepEqual(await readFile(join(stagedDir, 'signature-1')), original);
  // Publishing the staging area is the user's step; here a copy of the directory.
  await cp(staging, lookaside, { recursive: true });
  // skopeo reads basalt's lookaside into a dir:, and basalt does the same.
  const bySkopeo = join(work, 'back-by-skopeo');
  await skopeo(['--registries.d', registriesD, 'copy', '--src-tls-verify=false', `docker://${identity}`, `dir:${bySkopeo}`]);
  assert.deepEqual(await readFile(join(bySkopeo, 'signature-1')), original);
  const byBasalt = join(work, 'back-by-basalt');
  await basaltAsyncOk(['image', 'copy', '-q', ip, tls, '--registries.d', registriesD, `docker://${identity}`, `dir:${byBasalt}`], { env });
  assert.deepEqual(await readFile(join(byBasalt, 'signature-1')), original);
  const verdict = JSON.parse(await basaltAsyncOk(['verify', tls, `docker://${identity}`, '--gpg-keyring', keyring, '--registries.d', registriesD, '--format', 'json'], { env })) as { accepted: boolean };
  assert.equal(verdict.accepted, true);

  // registry → registry: from the source's lookaside to the destination's staging (skopeo does the same).
  const second = `${registry.host}/mirror/app:1`;
  await basaltAsyncOk(['image', 'copy', '-q', ip, tls, '--registries.d', registriesD, `docker://${identity}`, `docker://${second}`], { env });
  assert.deepEqual(await readFile(join(staging, 'mirror/app@' + digest.replace(':', '='), 'signature-1')), original);

  // Destinations without simple signatures refuse, writing nothing, unless --remove-signatures.
  const noSigs = await basaltAsync(['image', 'copy', '-q', ip, `dir:${copied}`, `oci:${join(work, 'oci-refused')}:x`], { env });
  assert.equal(noSigs.status, 6, noSigs.stderr);
  assert.match(noSigs.stderr, /--remove-signatures/);
  assert.equal(await stat(join(work, 'oci-refused')).catch(() => undefined), undefined);
  const skopeoRefuses = await runAsync('skopeo', ['--insecure-policy', 'copy', `dir:${copied}`, `oci:${join(work, 'oci-refused-skopeo')}:x`]);
  assert.notEqual(skopeoRefuses.status, 0, 'skopeo refuses the same copy');
  await basaltAsyncOk(['image', 'copy', '-q', ip, '--remove-signatures', `dir:${copied}`, `oci:${join(work, 'oci-unsigned')}:x`], { env });
  // A conversion would void the signatures: refused before anything is written.
  const converted = await basaltAsync(['image', 'copy', '-q', ip, '--format', 'v2s2', `dir:${copied}`, `dir:${join(work, 'converted')}`], { env });
  assert.equal(converted.status, 2, converted.stderr);
  assert.equal(await stat(join(work, 'converted')).catch(() => undefined), undefined);
  console.log(`dir: signatures: ${done()} s`);
});

test('basalt copy --sign-by into dir: writes signature-N that skopeo standalone-verify accepts', { timeout: TEST_TIMEOUT_MS }, async () => {
  const identity = `${registry.host}/signed/by-basalt:1`;
  const out = join(work, 'signed-by-basalt');
  await basaltAsyncOk(['image', 'copy', '-q', ip, '--sign-by', fingerprint, '--sign-identity', identity, image, `dir:${out}`], { env });
  assert.deepEqual((await files(out)).filter((n) => n.startsWith('signature-')), ['signature-1']);
  const digest = sha256(await readFile(join(out, 'manifest.json')));
  assert.match(await skopeo(['standalone-verify', join(out, 'manifest.json'), identity, fingerprint, join(out, 'signature-1')]), new RegExp(`Signature verified.*${digest}`));
  // Copying it again with another signature keeps the first and adds the second.
  const twice = join(work, 'signed-twice');
  await basaltAsyncOk(['image', 'copy', '-q', ip, '--sign-by', fingerprint, '--sign-identity', identity, `dir:${out}`, `dir:${twice}`], { env });
  assert.deepEqual((await files(twice)).filter((n) => n.startsWith('signature-')), ['signature-1', 'signature-2']);
  assert.deepEqual(await readFile(join(twice, 'signature-1')), await readFile(join(out, 'signature-1')));
});

test('sync --dest dir writes what skopeo sync --src dir reads, and basalt reads what skopeo sync --dest dir writes', { timeout: TEST_TIMEOUT_MS }, async () => {
  const done = timeBudget('dir: sync interop');
  const repo = `${registry.host}/sync/app`;
  for (const t of ['1', '2']) await basaltAsyncOk(['image', 'copy', '-q', ip, tls, image, `docker://${repo}:${t}`], { env });
  const byBasalt = join(work, 'sync-basalt');
  await basaltAsyncOk(['image', 'sync', '-q', '--src', 'docker', '--dest', 'dir', '--src-tls-verify=false', repo, byBasalt], { env });
  const bySkopeo = join(work, 'sync-skopeo');
  await skopeo(['sync', '--src', 'docker', '--dest', 'dir', '--src-tls-verify=false', repo, bySkopeo]);
  assert.deepEqual(await files(byBasalt), ['app:1', 'app:2']);
  assert.deepEqual(await files(byBasalt), await files(bySkopeo));
  for (const t of ['app:1', 'app:2']) assert.deepEqual(await files(join(byBasalt, t)), await files(join(bySkopeo, t)));
  // --scoped: DEST/HOST:PORT/PATH/REPO:TAG, as skopeo names it.
  const scoped = join(work, 'sync-scoped');
  await basaltAsyncOk(['image', 'sync', '-q', '--scoped', '--src', 'docker', '--dest', 'dir', '--src-tls-verify=false', `${repo}:1`, scoped], { env });
  const scopedSkopeo = join(work, 'sync-scoped-skopeo');
  await skopeo(['sync', '--scoped', '--src', 'docker', '--dest', 'dir', '--src-tls-verify=false', `${repo}:1`, scopedSkopeo]);
  assert.deepEqual(await files(join(scoped, registry.host, 'sync')), ['app:1']);
  assert.deepEqual(await files(join(scopedSkopeo, registry.host, 'sync')), ['app:1']);
  // Each reads the other's directory back into the registry.
  await skopeo(['sync', '--src', 'dir', '--dest', 'docker', '--dest-tls-verify=false', byBasalt, `${registry.host}/from-basalt`]);
  await basaltAsyncOk(['image', 'sync', '-q', '--src', 'dir', '--dest', 'docker', '--dest-tls-verify=false', bySkopeo, `${registry.host}/from-skopeo`], { env });
  for (const prefix of ['from-basalt', 'from-skopeo'])
    assert.deepEqual((JSON.parse(await basaltAsyncOk(['image', 'list-tags', tls, `docker://${registry.host}/${prefix}/app`], { env })) as string[]).sort(), ['1', '2'], prefix);
  const refused = await basaltAsync(['image', 'sync', '--src', 'dir', '--dest', 'dir', byBasalt, join(work, 'never')], { env });
  assert.equal(refused.status, 2, refused.stderr);

  // Signatures travel with sync: a skopeo-signed dir: image → registry staging → back into a dir:.
  const identity = `${registry.host}/sync-signed/app:s`;
  const usb = join(work, 'sync-signed-usb');
  await mkdir(usb); // skopeo needs the parent of a dir: path to exist
  await skopeo(['copy', '--sign-by', fingerprint, '--sign-identity', identity, image, `dir:${join(usb, 'app:s')}`]);
  const original = await readFile(join(usb, 'app:s', 'signature-1'));
  const digest = sha256(await readFile(join(usb, 'app:s', 'manifest.json')));
  const store = join(work, 'sync-sigs');
  const registriesD = join(work, 'sync-registries.d');
  await mkdir(registriesD);
  await writeFile(join(registriesD, 'test.yaml'), `docker:\n  ${registry.host}/sync-signed:\n    lookaside: file://${store}\n`);
  await basaltAsyncOk(['image', 'sync', '-q', '--registries.d', registriesD, '--src', 'dir', '--dest', 'docker', '--dest-tls-verify=false', usb, `${registry.host}/sync-signed`], { env });
  assert.deepEqual(await readFile(join(store, 'sync-signed/app@' + digest.replace(':', '='), 'signature-1')), original);
  const back = join(work, 'sync-signed-back');
  await basaltAsyncOk(['image', 'sync', '-q', '--registries.d', registriesD, '--src', 'docker', '--dest', 'dir', '--src-tls-verify=false', `${registry.host}/sync-signed/app`, back], { env });
  assert.deepEqual(await readFile(join(back, 'app:s', 'signature-1')), original);
  const noSigs = await basaltAsync(['image', 'sync', '-q', '--registries.d', registriesD, '--src', 'docker', '--dest', 'oci', '--src-tls-verify=false', `${registry.host}/sync-signed/app`, join(work, 'sync-signed-oci')], { env });
  assert.equal(noSigs.status, 6, noSigs.stderr);
  await basaltAsyncOk(['image', 'sync', '-q', '--remove-signatures', '--registries.d', registriesD, '--src', 'docker', '--dest', 'oci', '--src-tls-verify=false', `${registry.host}/sync-signed/app`, join(work, 'sync-signed-oci')], { env });
  console.log(`dir: sync interop: ${done()} s`);
});
