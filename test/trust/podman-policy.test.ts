import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { basaltAsync, basaltAsyncOk, runAsync } from './async-cli.js';
import { makeImageLayout } from '../harness/layouts.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { requireTool, tempDir } from '../harness/tools.js';

/**
 * podman reads what `basalt policy init` writes (policy.json + registries.d) and finds the
 * signatures `basalt sign` pushes. Debian 12's podman 4.3.1 is built with sigstore
 * verification disabled ("Debian-local change: sigstore disabled"), so where podman says so
 * this test checks what that podman can show — the policy is enforced, the signature is found
 * where containers/image looks — and where podman verifies sigstore signatures, it checks that
 * podman accepts basalt's signature and refuses a substituted image.
 */
/** A hung registry exchange fails the test instead of stalling the run. */
const TEST_TIMEOUT_MS = 300_000;
let registry: TestRegistry;
let work: string;
let env: NodeJS.ProcessEnv;
let podmanEnv: NodeJS.ProcessEnv;
const tls = '--tls-verify=false';

function podman(args: string[]): Promise<{ status: number; out: string }> {
  const storage = ['--root', join(work, 'podman-root'), '--runroot', join(work, 'podman-run'), '--storage-driver', 'vfs'];
  return runAsync('podman', [...storage, ...args], podmanEnv);
}

before(async () => {
  requireTool('podman');
  registry = await startRegistry({ flavour: 'open' });
  work = await tempDir('trust-podman');
  env = { BASALT_PASSWORD: 'pw', BASALT_STORE: join(work, 'store'), HOME: work };
  // podman reads registries.d from $HOME/.config/containers/registries.d when it exists.
  podmanEnv = { HOME: work };
  await mkdir(join(work, '.config/containers/registries.d'), { recursive: true });
  await basaltAsyncOk(['keygen', '--output-key-prefix', join(work, 'release')], { env });
  await makeImageLayout(join(work, 'a'), 'img', [{ 'etc/release': 'A\n' }]);
  await makeImageLayout(join(work, 'b'), 'img', [{ 'etc/release': 'B\n' }]);
  for (const [layout, tag] of [['a', 'signed'], ['a', 'unsigned-copy'], ['b', 'other']] as const)
    await basaltAsyncOk(['image', 'copy', '-q', '--insecure-policy', tls, `oci:${join(work, layout)}:img`, `docker://${registry.host}/${tag === 'unsigned-copy' ? 'plain' : 'fleet'}/os:${tag}`], { env });
  // The second image is unsigned under its own digest in another repository.
  await basaltAsyncOk(['image', 'copy', '-q', '--insecure-policy', tls, `oci:${join(work, 'b')}:img`, `docker://${registry.host}/fleet/os:unsigned`], { env });
});

after(async () => {
  await registry?.stop();
});

test('basalt policy init writes a policy and registries.d podman enforces; refuses to clobber them', { timeout: TEST_TIMEOUT_MS }, async () => {
  const policyFile = join(work, 'policy.json');
  const dir = join(work, '.config/containers/registries.d');
  await basaltAsyncOk(['policy', 'init', '--key', join(work, 'release.pub'), '--scope', `${registry.host}/fleet`, '--policy-file', policyFile, '--registries.d', dir], { env });
  const policy = JSON.parse(await readFile(policyFile, 'utf8')) as { default: { type: string }[]; transports: { docker: Record<string, { type: string; keyPath: string }[]> } };
  assert.deepEqual(policy.default, [{ type: 'reject' }]);
  assert.equal(policy.transports.docker[`${registry.host}/fleet`]?.[0]?.type, 'sigstoreSigned');
  const yamlFiles = await readdir(dir);
  assert.equal(yamlFiles.length, 1);
  assert.match(await readFile(join(dir, yamlFiles[0] as string), 'utf8'), /use-sigstore-attachments: true/);
  const again = await basaltAsync(['policy', 'init', '--key', join(work, 'release.pub'), '--scope', `${registry.host}/fleet`, '--policy-file', policyFile, '--registries.d', dir], { env });
  assert.equal(again.status, 2);
  assert.match(again.stderr, /already exists.*\n.*--force/);

  // podman under this policy: an unsigned image in the scope is refused for lack of a signature,
  // and one outside every scope by the default reject.
  const unsigned = await podman(['pull', tls, '--signature-policy', policyFile, `${registry.host}/fleet/os:unsigned`]);
  assert.notEqual(unsigned.status, 0);
  assert.match(unsigned.out, /A signature was required, but no signature exists/);
  const outside = await podman(['pull', tls, '--signature-policy', policyFile, `${registry.host}/plain/os:unsigned-copy`]);
  assert.notEqual(outside.status, 0);
  assert.match(outside.out, /rejected by policy/i);
});

test('basalt sign → podman finds the signature; where podman verifies sigstore, it accepts it and refuses a substituted image', { timeout: TEST_TIMEOUT_MS }, async () => {
  const policyFile = join(work, 'policy.json');
  const signed = `${registry.host}/fleet/os:signed`;
  await basaltAsyncOk(['sign', tls, `docker://${signed}`, '--key', join(work, 'release.key')], { env });
  // basalt accepts under the very files podman reads.
  await basaltAsyncOk(['verify', tls, `docker://${signed}`, '--policy', policyFile, '--registries.d', join(work, '.config/containers/registries.d')], { env });
  const pulled = await podman(['pull', tls, '--signature-policy', policyFile, signed]);
  assert.doesNotMatch(pulled.out, /no signature exists/, 'podman looked where basalt wrote and found the signature');
  // Substitution: the other (validly signed, but as fleet/os:other) image pushed under :signed's sibling tag.
  await basaltAsyncOk(['sign', tls, `docker://${registry.host}/fleet/os:other`, '--key', join(work, 'release.key')], { env });
  await basaltAsyncOk(['image', 'copy', '-q', '--insecure-policy', tls, `docker://${registry.host}/fleet/os:other`, `docker://${registry.host}/fleet/os:substituted`], { env });
  const substituted = await podman(['pull', tls, '--signature-policy', policyFile, `${registry.host}/fleet/os:substituted`]);
  assert.notEqual(substituted.status, 0, 'podman must never accept the substituted image');
  const refusedByBasalt = await basaltAsync(['verify', tls, `docker://${registry.host}/fleet/os:substituted`, '--policy', policyFile, '--registries.d', join(work, '.config/containers/registries.d')], { env });
  assert.equal(refusedByBasalt.status, 8);
  if (/sigstore disabled/.test(pulled.out)) {
    // Debian's podman stops here: it found the signature but will not check it.
    assert.notEqual(pulled.status, 0);
    assert.match(substituted.out, /sigstore disabled/);
    return;
  }
  assert.equal(pulled.status, 0, pulled.out);
  assert.match(substituted.out, /not match|rejected/i);
});
