import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basalt, basaltOk } from '../harness/cli.js';
import { makeImageLayout } from '../harness/layouts.js';
import { requireTool, tempDir } from '../harness/tools.js';

/**
 * The install path calls the same policy check as image copy, on the source it is about to
 * import, before any layer reaches the sysroot's repository.
 */
test('install to-filesystem refuses an image the policy refuses; nothing is imported or deployed', async () => {
  requireTool('ostree');
  const work = await tempDir('trust-install');
  const env = { BASALT_PASSWORD: 'pw', BASALT_STORE: join(work, 'store'), HOME: work };
  const layout = join(work, 'layout');
  await makeImageLayout(layout, 'img', [{ 'usr/lib/os-release': 'ID=test\n' }]);
  basaltOk(['keygen', '--output-key-prefix', join(work, 'k')], { env });
  const policy = join(work, 'policy.json');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'reject' }], transports: { oci: { [layout]: [{ type: 'sigstoreSigned', keyPath: join(work, 'k.pub'), signedIdentity: { type: 'exactRepository', dockerRepository: 'example.com/os' } }] } } }));
  const root = join(work, 'root');
  for (const d of ['root', 'root2', 'root3']) await mkdir(join(work, d));
  const r = basalt(['install', 'to-filesystem', root, '--source-imgref', `oci:${layout}:img`, '--policy', policy], { env });
  assert.equal(r.status, 8, r.stderr);
  assert.match(r.stderr, /refused by .*policy\.json .*no signatures/);
  const objects = await readdir(join(root, 'ostree/repo/objects')).catch(() => [] as string[]);
  const deploys = await readdir(join(root, 'ostree/deploy/default/deploy')).catch(() => [] as string[]);
  assert.deepEqual(deploys, [], 'no deployment');
  // ostree's object directory holds only its empty fan-out directories, if anything.
  for (const d of objects) assert.deepEqual(await readdir(join(root, 'ostree/repo/objects', d)), [], `objects/${d} is empty`);
  // A signature made for the identity the policy names lets the same check pass (the install
  // then goes on to its own checks of the image, which this tiny image does not meet).
  basaltOk(['sign', `oci:${layout}:img`, '--key', join(work, 'k.key'), '--identity', 'example.com/os:1'], { env });
  const r2 = basalt(['install', 'to-filesystem', join(work, 'root2'), '--source-imgref', `oci:${layout}:img`, '--policy', policy], { env });
  assert.doesNotMatch(r2.stderr, /refused by/);
  // --enforce-container-sigpolicy with an accept-anything policy refuses before anything is made.
  const lax = join(work, 'lax.json');
  await writeFile(lax, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const r3 = basalt(['install', 'to-filesystem', join(work, 'root3'), '--source-imgref', `oci:${layout}:img`, '--policy', lax, '--enforce-container-sigpolicy'], { env });
  assert.equal(r3.status, 8, r3.stderr);
  assert.match(r3.stderr, /enforce-container-sigpolicy/);
});
