import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeTestImage } from './fixtures.js';
import { checkBootable, type Bootability } from './bootability.js';
import { installToFilesystem } from '../../src/deploy/install.js';
import { upgrade } from '../../src/deploy/upgrade.js';
import { CRASH_ENV, CRASH_POINTS, type CrashPoint } from '../../src/deploy/crash-points.js';
import { entryId, entryIdOfFile } from '../../src/deploy/bootentries.js';
import { listDeployments, repoOf, type Deployment } from '../../src/deploy/sysroot.js';
import { metadataKey } from '../../src/deploy/ostree-tool.js';
import { parseGVariantString } from '../../src/deploy/gvariant-text.js';
import { IMAGE_REF_PREFIX, META } from '../../src/deploy/import.js';
import { layerRef } from '../../src/deploy/layer-commit.js';
import { readImage, serializeImage, writeImage, type Image } from '../../src/oci/image.js';
import { openDestination, openSource } from '../../src/oci/transports/index.js';
import { CLI } from '../harness/cli.js';
import { REPO_ROOT, requireTool } from '../harness/tools.js';

requireTool('ostree', "install Debian's ostree package (./scripts/setup does)");
requireTool('setcap', 'install libcap2-bin');

/**
 * Issue 5's kill points 1–6 at directory level: a sysroot with v2 booted-by-default and v1 as
 * rollback (installed and upgraded by basalt), then `basalt upgrade --sysroot --esp` to v3 in
 * its own process group with BASALT_CRASH_AT set, so the named point SIGKILLs basalt and any
 * ostree child. After the kill: the ESP boots (checkBootable), the repository holds no
 * half-made refs, and a rerun of the same command completes with v3 as the default. The image
 * comes from an OCI layout (`oci:LAYOUT:app`, re-tagged to publish a version); v3 has a new
 * upper layer, so point 1 cuts a real layer stream.
 */
const work = await mkdtemp('/tmp/basalt-test-crash-');
const layout = join(work, 'layout');
const app = `oci:${layout}:app`;
const roots: string[] = [];
after(async () => {
  for (const root of roots) {
    try {
      execFileSync('chattr', ['-R', '-i', root], { stdio: 'ignore', timeout: 30_000 });
    } catch {
      // entries that cannot carry the flag; harmless
    }
  }
  await rm(work, { recursive: true, force: true });
});

const images: Record<string, Image> = {};
for (const v of ['v1', 'v2', 'v3']) images[v] = (await writeTestImage(work, layout, v, { version: v, extra: v })).image;
const digest = (v: string): string => serializeImage(images[v] as Image).manifest.digest;

/** Publishes version `v` as `app` (what the device follows). */
async function publish(v: string): Promise<void> {
  const source = await openSource(`oci:${layout}:${v}`);
  try {
    await writeImage(await readImage(source), await openDestination(app));
  } finally {
    await source.close();
  }
}

interface Killed {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs the CLI as its own process group (so the kill takes ostree children along). */
function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Killed> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, detached: true, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

const ostree = (root: string, ...args: string[]): string => execFileSync('ostree', [`--repo=${repoOf(root)}`, ...args], { encoding: 'utf8' });

async function digestOf(root: string, rev: string): Promise<string | undefined> {
  const v = await metadataKey(repoOf(root), rev, META.manifestDigest);
  return v === undefined ? undefined : parseGVariantString(v);
}

/** Every basalt ref names a whole commit with basalt's metadata; fsck finds nothing corrupt. */
async function assertRefsWhole(root: string, what: string): Promise<void> {
  for (const ref of ostree(root, 'refs', 'basalt').split('\n').filter(Boolean)) {
    const full = `basalt/${ref}`.replace(/^basalt\/basalt\//, 'basalt/');
    ostree(root, 'ls', full, '/');
    if (full.startsWith(IMAGE_REF_PREFIX)) assert.ok(await digestOf(root, full), `${what}: ${full} has no manifest digest`);
    else assert.ok(await metadataKey(repoOf(root), full, 'basalt.diff-id'), `${what}: layer ref ${full} has no diff-id`);
  }
  ostree(root, 'fsck', '--quiet');
}

const assertBoots = (b: Bootability, what: string): void => assert.deepEqual(b.problems, [], `${what}: ${JSON.stringify(b.entries, null, 1)}`);
const basaltTemp = async (root: string): Promise<string[]> => (await readdir(join(repoOf(root), 'tmp'))).filter((n) => n.startsWith('basalt-'));
const espIds = async (esp: string): Promise<string[]> => (await readdir(join(esp, 'loader/entries'))).map((n) => entryIdOfFile(n) ?? n).sort();

/** v1 installed, v2 upgraded to: two deployments, both with ESP entries. */
async function twoDeployments(name: string): Promise<{ root: string; esp: string }> {
  const root = join(work, name, 'root');
  const esp = join(work, name, 'esp');
  await mkdir(root, { recursive: true });
  roots.push(root);
  await publish('v1');
  await installToFilesystem(root, app, { rootMountSpec: 'UUID=0000-test', kargs: ['console=tty0'], espDir: esp });
  await publish('v2');
  await upgrade({ sysroot: root, espDir: esp });
  return { root, esp };
}

const v3Upper = (): string => layerRef((images.v3 as Image).layers[1]?.diffId as string);

for (const point of CRASH_POINTS) {
  test(`killed at ${point}: the ESP boots a complete deployment, no half-made refs, a rerun completes`, { timeout: 300_000 }, async () => {
    const started = Date.now();
    const { root, esp } = await twoDeployments(point);
    const [v2, v1] = await listDeployments(root);
    assert.ok(v2 && v1);
    assertBoots(await checkBootable(root, esp), 'before');
    await publish('v3');
    const args = ['upgrade', '--sysroot', root, '--esp', esp];
    const killed = await runCli(args, { [CRASH_ENV]: point });
    assert.equal(killed.signal, 'SIGKILL', `basalt was killed at ${point} (exit ${killed.code}): ${killed.stderr}`);

    const cut = await checkBootable(root, esp);
    assertBoots(cut, `after the kill at ${point}`);
    await assertRefsWhole(root, `after the kill at ${point}`);
    const now = await listDeployments(root);
    const layers = ostree(root, 'refs', 'basalt/layer');
    const imageRef = ostree(root, 'refs', IMAGE_REF_PREFIX).trim();
    // What each point leaves, as the design says it should.
    if (point === 'layer-download' || point === 'import-commit') {
      assert.deepEqual(now.map((d) => entryId(d)), [entryId(v2), entryId(v1)], 'nothing deployed');
      assert.equal(await digestOf(root, `${IMAGE_REF_PREFIX}/${imageRef.split('/').pop() as string}`), digest('v2'), 'the image ref still names v2');
      assert.equal(layers.includes(v3Upper().slice('basalt/layer/'.length)), point === 'import-commit', 'the new layer ref exists only once the layer was whole');
      assert.equal(cut.default?.deployment?.endsWith(`${v2.checksum}.${v2.deploySerial}`), true, 'v2 still boots');
      assert.ok((await basaltTemp(root)).length > 0, 'the killed run left its pipe or merge tree (removed by the rerun below)');
    } else {
      assert.equal(await digestOf(root, now[0]?.checksum as string), digest('v3'), 'ostree deployed v3');
      assert.deepEqual(now.slice(1).map((d) => entryId(d)), [entryId(v2)], 'v2 is the rollback, v1 deleted by ostree');
      assert.ok(!(await espIds(esp)).includes(entryId(v1)), "v1's entry left the ESP before ostree deleted v1");
      const defaultIsV3 = cut.default?.deployment?.endsWith(`${now[0]?.checksum}.${now[0]?.deploySerial}`);
      // Before the new entry is written, v2 boots (through the hook: ostree replaced its boot link).
      if (point === 'ostree-deployed' || point === 'esp-kernel-copied') {
        assert.equal(defaultIsV3, false);
        assert.equal(cut.default?.via, 'hook', 'the old entry names a boot link ostree deleted: the initramfs hook resolves it');
      } else if (point === 'esp-entry-written') {
        // v3's new entry has ostree's top version, and v2's, not yet rewritten, still has it too:
        // systemd-boot breaks the tie by entry id, so either boots (both are complete, checked above).
        assert.ok((await espIds(esp)).includes(entryId(now[0] as Deployment)), "v3's entry is on the ESP");
      } else assert.equal(defaultIsV3, true, `v3 is the default at ${point}`);
    }

    const rerun = await runCli(args);
    assert.equal(rerun.code, 0, `rerun after ${point}: ${rerun.stderr}`);
    const done = await listDeployments(root);
    assert.equal(await digestOf(root, done[0]?.checksum as string), digest('v3'), 'the rerun leaves v3 as the default');
    assert.equal(done.length, 2);
    const final = await checkBootable(root, esp);
    assertBoots(final, `after the rerun (${point})`);
    assert.equal(final.default?.via, 'direct');
    assert.ok(final.default?.deployment?.endsWith(`${done[0]?.checksum}.${done[0]?.deploySerial}`), 'v3 boots by default');
    assert.deepEqual(await espIds(esp), done.map((d) => entryId(d)).sort(), 'the ESP holds exactly the deployments');
    await assertRefsWhole(root, `after the rerun (${point})`);
    assert.deepEqual(await basaltTemp(root), [], 'nothing of the killed run is left in the repository tmp/');
    console.log(`[crash] ${point}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
}

/**
 * rollback, kargs and cleanup also make ostree delete deployments (a redeploy drops the old
 * copy of the rollback target; cleanup undeploys). Their ESP entries go first, so a kill right
 * after ostree's step leaves only entries that boot; the next ESP mirror (at boot) completes.
 */
test('rollback killed once ostree has deployed: no ESP entry names a deleted deployment; the mirror completes', { timeout: 300_000 }, async () => {
  const { root, esp } = await twoDeployments('rollback-cut');
  const [v2, v1] = await listDeployments(root);
  assert.ok(v2 && v1);
  const killed = await runCli(['rollback', '--sysroot', root, '--esp', esp], { [CRASH_ENV]: 'ostree-deployed' });
  assert.equal(killed.signal, 'SIGKILL', `basalt was killed (exit ${killed.code}): ${killed.stderr}`);
  const now = await listDeployments(root);
  assert.deepEqual(now.map((d) => d.checksum), [v1.checksum, v2.checksum], "v1's commit deployed again as the default, v2 kept");
  assert.notEqual(entryId(now[0] as Deployment), entryId(v1), 'a new deploy serial');
  const cut = await checkBootable(root, esp);
  assertBoots(cut, 'after the kill');
  assert.ok(!(await espIds(esp)).includes(entryId(v1)), "the old v1 deployment's entry left the ESP before ostree deleted it");
  assert.ok(cut.default?.deployment?.endsWith(`${v2.checksum}.${v2.deploySerial}`), 'v2 still boots until the mirror runs');

  const mirror = await runCli(['internal', 'esp-mirror', '--sysroot', root, '--esp', esp]);
  assert.equal(mirror.code, 0, mirror.stderr);
  const final = await checkBootable(root, esp);
  assertBoots(final, 'after the mirror');
  assert.ok(final.default?.deployment?.endsWith(`${now[0]?.checksum}.${now[0]?.deploySerial}`), 'the rolled-back-to v1 boots by default');
  assert.deepEqual(await espIds(esp), now.map((d) => entryId(d)).sort());
});

test('cleanup killed once ostree has undeployed: no ESP entry names a deleted deployment; the mirror completes', { timeout: 300_000 }, async () => {
  const { root, esp } = await twoDeployments('cleanup-cut');
  const [, v1] = await listDeployments(root);
  assert.ok(v1);
  // v1 pinned survives the upgrade to v3 as a third deployment; unpinned, cleanup removes it.
  assert.equal((await runCli(['pin', entryId(v1), '--sysroot', root])).code, 0);
  await publish('v3');
  assert.equal((await runCli(['upgrade', '--sysroot', root, '--esp', esp])).code, 0);
  assert.equal((await runCli(['unpin', entryId(v1), '--sysroot', root])).code, 0);
  assert.equal((await listDeployments(root)).length, 3);
  assert.ok((await espIds(esp)).includes(entryId(v1)));

  const killed = await runCli(['cleanup', '--sysroot', root, '--esp', esp], { [CRASH_ENV]: 'ostree-deployed' });
  assert.equal(killed.signal, 'SIGKILL', `basalt was killed (exit ${killed.code}): ${killed.stderr}`);
  const now = await listDeployments(root);
  assert.equal(now.length, 2, 'ostree undeployed v1');
  assertBoots(await checkBootable(root, esp), 'after the kill');
  assert.ok(!(await espIds(esp)).includes(entryId(v1)), "v1's entry left the ESP before ostree undeployed it");

  const mirror = await runCli(['internal', 'esp-mirror', '--sysroot', root, '--esp', esp]);
  assert.equal(mirror.code, 0, mirror.stderr);
  assertBoots(await checkBootable(root, esp), 'after the mirror');
  assert.deepEqual(await espIds(esp), now.map((d) => entryId(d)).sort());
});
