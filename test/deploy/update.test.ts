import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeTestImage } from './fixtures.js';
import { installToFilesystem } from '../../src/deploy/install.js';
import { checkForUpdate, switchImage, upgrade, upgradeFromArchive } from '../../src/deploy/upgrade.js';
import { editDeploymentKargs, rollback } from '../../src/deploy/rollback.js';
import { cleanup } from '../../src/deploy/cleanup.js';
import { setPinned } from '../../src/deploy/pin.js';
import { checkUpdateAllowed } from '../../src/deploy/update-policy.js';
import { entryId, entryIdOfFile } from '../../src/deploy/bootentries.js';
import { listDeployments, deployDir, repoOf, type Deployment } from '../../src/deploy/sysroot.js';
import { carriedKargs } from '../../src/deploy/kargs-edit.js';
import { appendPath } from '../../src/oci/filesystem.js';
import { readImage, serializeImage, writeImage, type Image } from '../../src/oci/image.js';
import { Scratch } from '../../src/oci/scratch.js';
import { openDestination, openSource } from '../../src/oci/transports/index.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { basalt } from '../harness/cli.js';
import { requireTool } from '../harness/tools.js';

requireTool('ostree', "install Debian's ostree package (./scripts/setup does)");
requireTool('setcap', 'install libcap2-bin');

/**
 * Day-2 commands against a sysroot directory (as install.test.ts makes one): the device's
 * image is `oci:LAYOUT:app`; "publishing" a new version re-tags `app` in the layout.
 */
const work = await mkdtemp('/tmp/basalt-test-update-');
const root = join(work, 'root');
const esp = join(work, 'esp');
const layout = join(work, 'layout');
after(async () => {
  try {
    execFileSync('chattr', ['-R', '-i', root], { stdio: 'ignore', timeout: 30_000 });
  } catch {
    // entries that cannot carry the flag; harmless
  }
  await rm(work, { recursive: true, force: true });
});
await mkdir(root);
const app = `oci:${layout}:app`;
const ostree = (...args: string[]): string => execFileSync('ostree', args, { encoding: 'utf8' });
const refs = (prefix: string): string[] => ostree('refs', `--repo=${repoOf(root)}`, prefix).split('\n').filter(Boolean);
const opts = { sysroot: root, espDir: esp };
const digestOfImage = (image: Image): string => serializeImage(image).manifest.digest;

/** Copies what `app` names now to another image name (the layout's blobs back the layers). */
async function copyApp(to: string): Promise<void> {
  const source = await openSource(app);
  try {
    await writeImage(await readImage(source), await openDestination(to));
  } finally {
    await source.close();
  }
}

/** Publishes v1/v2 (same kernel, new upper layer) as `app`, or an image with extra kargs.d. */
async function publish(version: string): Promise<Image> {
  return (await writeTestImage(work, layout, 'app', { version, extra: version })).image;
}

async function publishWithKargs(version: string, kargs: string): Promise<Image> {
  const base = await publish(version);
  const extra = join(work, `kargs-${version}`);
  await mkdir(join(extra, 'usr/lib/bootc/kargs.d'), { recursive: true });
  await writeFile(join(extra, 'usr/lib/bootc/kargs.d/10-console.toml'), kargs);
  const scratch = await Scratch.create();
  try {
    const image = await appendPath(base, scratch, extra, { sourceDateEpoch: 1714557600 });
    await writeImage(image, await openDestination(app));
  } finally {
    await scratch.dispose();
  }
  const source = await openSource(app);
  try {
    return await readImage(source);
  } finally {
    await source.close();
  }
}

const deployments = (): Promise<Deployment[]> => listDeployments(root);
const espEntries = async (): Promise<string[]> => (await readdir(join(esp, 'loader/entries')).catch(() => [] as string[])).map((n) => entryIdOfFile(n) ?? n).sort();
const etcOf = (d: Deployment): string => join(deployDir(root, d.stateroot, d.checksum, d.deploySerial), 'etc');

const v1 = await publish('1.0');
await installToFilesystem(root, app, { rootMountSpec: 'UUID=0000-test', kargs: ['console=tty0'], espDir: esp });

test('upgrade --check reads the manifest only: no update, then one, nothing written', async () => {
  const none = await checkForUpdate(opts);
  assert.equal(none.available, false);
  assert.equal(none.manifestDigest, digestOfImage(v1));
  const v2 = await publish('2.0');
  const some = await checkForUpdate(opts);
  assert.equal(some.available, true);
  assert.equal(some.manifestDigest, digestOfImage(v2));
  assert.equal(some.version, '2.0');
  assert.equal((await deployments()).length, 1, 'check deployed nothing');
  const cli = basalt(['upgrade', '--check', '--sysroot', root, '--json']);
  assert.equal(cli.status, 0, cli.stderr);
  assert.equal(JSON.parse(cli.stdout).available, true);
});

test('upgrade deploys v2 as the default, imports only the new layer, keeps v1 as rollback, carries /etc and kargs', async () => {
  const [before] = await deployments();
  assert.ok(before);
  await writeFile(join(etcOf(before), 'local.conf'), 'made on the device\n');
  const layersBefore = refs('basalt/layer').length;
  const r = await upgrade(opts);
  assert.equal(r.changed, true);
  assert.equal(r.staged, false, 'a sysroot directory is deployed at once');
  assert.equal(r.version, '2.0');
  assert.equal(r.import?.imported, 1, 'the unchanged base layer came from the cache');
  assert.equal(r.import?.layers.filter((l) => l.cached).length, 1);
  assert.equal(refs('basalt/layer').length, layersBefore + 1);
  const [first, second] = await deployments();
  assert.ok(first && second);
  assert.equal(second.checksum, before.checksum, 'v1 is the rollback');
  assert.equal(first.checksum, r.deployment?.checksum);
  assert.equal(await readFile(join(etcOf(first), 'local.conf'), 'utf8'), 'made on the device\n', '/etc 3-way merge carried the local file');
  assert.match(await readFile(join(etcOf(first), 'app.conf'), 'utf8'), /app=2\.0/, 'the image /etc default is new');
  assert.deepEqual(carriedKargs(first.options), carriedKargs(before.options), 'same arguments, no duplicates');
  assert.match(first.options, new RegExp(`basalt\\.deployment=default/${first.checksum}\\.${first.deploySerial}`));
  assert.deepEqual(await espEntries(), [entryId(first), entryId(second)].sort(), 'ESP mirrored');
});

test('a second upgrade with nothing new changes nothing', async () => {
  const before = (await deployments()).map((d) => entryId(d));
  const r = await upgrade(opts);
  assert.equal(r.changed, false);
  assert.deepEqual((await deployments()).map((d) => entryId(d)), before);
  const cli = basalt(['upgrade', '--sysroot', root, '--esp', esp]);
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, /^No update/);
});

test('kargs edits make a new deployment; local arguments survive an upgrade; only kargs.d differences apply', async () => {
  const [before] = await deployments();
  assert.ok(before);
  const cli = basalt(['kargs', '--sysroot', root, '--esp', esp, '--append', 'basalt.test=1', '--delete', 'quiet', '--json']);
  assert.equal(cli.status, 0, cli.stderr);
  const [edited, rollbackDep] = await deployments();
  assert.ok(edited && rollbackDep);
  assert.equal(edited.checksum, before.checksum, 'same commit');
  assert.notEqual(edited.deploySerial, before.deploySerial);
  assert.equal(entryId(rollbackDep), entryId(before), 'the unedited deployment is the rollback');
  assert.deepEqual(carriedKargs(edited.options), ['root=UUID=0000-test', 'rw', 'console=ttyS0,115200', 'console=tty0', 'basalt.test=1']);
  const shown = basalt(['kargs', '--sysroot', root]);
  assert.equal(shown.stdout.trim(), 'root=UUID=0000-test rw console=ttyS0,115200 console=tty0 basalt.test=1');
  // v3's kargs.d keeps console= and quiet and adds splash: only splash is new.
  await publishWithKargs('3.0', 'kargs = ["console=ttyS0,115200", "quiet", "splash"]\n');
  const r = await upgrade(opts);
  assert.equal(r.changed, true);
  const [v3] = await deployments();
  assert.ok(v3);
  assert.deepEqual(carriedKargs(v3.options), ['root=UUID=0000-test', 'rw', 'console=ttyS0,115200', 'console=tty0', 'basalt.test=1', 'splash']);
  // v4 drops splash from kargs.d: it goes; the owner's argument stays.
  await publishWithKargs('4.0', 'kargs = ["console=ttyS0,115200", "quiet"]\n');
  await upgrade(opts);
  const [v4] = await deployments();
  assert.ok(v4);
  assert.deepEqual(carriedKargs(v4.options), ['root=UUID=0000-test', 'rw', 'console=ttyS0,115200', 'console=tty0', 'basalt.test=1']);
  const bad = basalt(['kargs', '--sysroot', root, '--delete', 'nosuch']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /no such kernel argument/);
  const managed = basalt(['kargs', '--sysroot', root, '--append', 'ostree=/x']);
  assert.equal(managed.status, 2);
});

test('rollback makes the previous image the default with its own origin and arguments', async () => {
  const [current, previous] = await deployments();
  assert.ok(current && previous);
  const cli = basalt(['rollback', '--sysroot', root, '--esp', esp, '--json']);
  assert.equal(cli.status, 0, cli.stderr);
  const [now, next] = await deployments();
  assert.ok(now && next);
  assert.equal(now.checksum, previous.checksum, 'the rollback image boots next');
  assert.deepEqual(carriedKargs(now.options), carriedKargs(previous.options));
  assert.equal(entryId(next), entryId(current), 'the image rolled back from is the new rollback');
  assert.deepEqual(await espEntries(), [entryId(now), entryId(next)].sort());
  // And back again.
  const again = await rollback(opts);
  assert.equal(again.deployment.checksum, current.checksum);
});

test('pin protects a deployment from updates and cleanup; unpin lets cleanup remove it', async () => {
  const [, rollbackDep] = await deployments();
  assert.ok(rollbackDep);
  const pinned = basalt(['pin', '1', '--sysroot', root, '--json']);
  assert.equal(pinned.status, 0, pinned.stderr);
  assert.equal(JSON.parse(pinned.stdout).changed, true);
  await publish('5.0');
  await upgrade(opts);
  await publish('6.0');
  await upgrade(opts);
  const list = await deployments();
  assert.equal(list.length, 3, 'default, rollback and the pinned one');
  assert.ok(list.some((d) => entryId(d) === entryId(rollbackDep)), 'pinned deployment kept');
  const status = JSON.parse(basalt(['status', '--sysroot', root, '--json']).stdout);
  assert.equal(status.status.default.image.version, '6.0');
  // YAML output comes from a lazily loaded bundle chunk: the same host object, another format.
  const yamlStatus = basalt(['status', '--sysroot', root, '--format', 'yaml']);
  assert.equal(yamlStatus.status, 0, yamlStatus.stderr);
  assert.match(yamlStatus.stdout, /^apiVersion: /m);
  assert.match(yamlStatus.stdout, /version: "?6\.0"?$/m);
  const kept = await cleanup(opts);
  assert.deepEqual(kept.undeployed, [], 'cleanup keeps pinned deployments');
  await setPinned(false, { sysroot: root, deployment: entryId(rollbackDep) });
  const removed = await cleanup(opts);
  assert.deepEqual(removed.undeployed, [`${rollbackDep.checksum}.${rollbackDep.deploySerial}`]);
  assert.equal((await deployments()).length, 2);
  assert.deepEqual(await espEntries(), (await deployments()).map((d) => entryId(d)).sort(), 'ESP follows');
});

test('cleanup deletes image and layer refs no deployment uses; the kept deployments stay whole', async () => {
  const before = refs('basalt/layer');
  const r = await cleanup(opts);
  // Everything unused was removed by the previous cleanup already: a rerun removes nothing more.
  assert.deepEqual(r.undeployed, []);
  const layers = refs('basalt/layer');
  assert.deepEqual(layers, before);
  // 2 deployments (v5, v6) share the base layer; each has its own upper layer.
  assert.equal(layers.length, 3, `layers kept: ${layers.join(' ')}`);
  const fsck = ostree('fsck', `--repo=${repoOf(root)}`);
  assert.match(fsck, /Validating refs/);
  for (const d of await deployments()) ostree('ls', `--repo=${repoOf(root)}`, d.checksum, '/usr/lib/modules');
});

test('offline: switch --transport oci-archive and upgrade --from FILE, and the origin each leaves', async () => {
  const archive = join(work, 'usb', 'app.tar');
  await mkdir(join(work, 'usb'));
  const v7 = await publish('7.0');
  await copyApp(`oci-archive:${archive}`);
  const fromFile = await upgradeFromArchive(archive, opts);
  assert.equal(fromFile.changed, true);
  assert.equal(fromFile.manifestDigest, digestOfImage(v7));
  assert.deepEqual(fromFile.target, { image: `${layout}:app`, transport: 'oci' }, 'still follows its image');
  const [d7] = await deployments();
  assert.ok(d7);
  assert.match(await readFile(`${deployDir(root, 'default', d7.checksum, d7.deploySerial)}.origin`, 'utf8'), /transport=oci\n/);
  await publish('8.0');
  await copyApp(`oci-archive:${archive}`);
  const cli = basalt(['switch', '--transport', 'oci-archive', archive, '--sysroot', root, '--esp', esp, '--json']);
  assert.equal(cli.status, 0, cli.stderr);
  const switched = JSON.parse(cli.stdout);
  assert.equal(switched.version, '8.0');
  assert.deepEqual(switched.target, { image: archive, transport: 'oci-archive' });
  const status = JSON.parse(basalt(['status', '--sysroot', root, '--json']).stdout);
  assert.deepEqual(status.spec.image, { image: archive, transport: 'oci-archive' });
  const r = await switchImage({ image: archive, transport: 'oci-archive' }, opts);
  assert.equal(r.changed, false, 'switching to what it follows and runs is a no-op');
});

test('a missing image fails before anything is written', async () => {
  const before = (await deployments()).map((d) => entryId(d));
  const r = basalt(['switch', '--transport', 'oci-archive', join(work, 'nope.tar'), '--sysroot', root]);
  assert.notEqual(r.status, 0);
  assert.deepEqual((await deployments()).map((d) => entryId(d)), before);
});

test('staging needs a running system: --download-only and --from-downloaded refuse a sysroot directory', () => {
  const dl = basalt(['upgrade', '--download-only', '--sysroot', root]);
  assert.equal(dl.status, 2, dl.stderr);
  assert.match(dl.stderr, /only a running system/);
  const fd = basalt(['upgrade', '--from-downloaded', '--sysroot', root]);
  assert.equal(fd.status, 3, fd.stderr);
  assert.match(fd.stderr, /no staged deployment/);
  const nohost = basalt(['upgrade']);
  assert.equal(nohost.status, 2, 'this build machine is not an ostree system');
});

test('the update gate refuses a manifest whose bytes do not match its digest', async () => {
  const source = await openSource(app);
  try {
    const image = await readImage(source);
    const raw = image.raw;
    assert.ok(raw);
    await checkUpdateAllowed({ source, image, manifestDigest: raw.manifest.digest, reference: app });
    const tampered: Image = { ...image, raw: { ...raw, manifest: { ...raw.manifest, bytes: Buffer.concat([raw.manifest.bytes, Buffer.from(' ')]) } } };
    await assert.rejects(checkUpdateAllowed({ source, image: tampered, manifestDigest: raw.manifest.digest, reference: app }), (e) => isBasaltError(e) && e.kind === 'integrity');
    await assert.rejects(checkUpdateAllowed({ source, image, manifestDigest: `sha256:${'0'.repeat(64)}`, reference: app }), (e) => isBasaltError(e) && e.kind === 'integrity');
  } finally {
    await source.close();
  }
});

test('every update path asks the signature policy first: a refusing policy leaves the sysroot as it was', async () => {
  const reject = join(work, 'reject-policy.json');
  await writeFile(reject, JSON.stringify({ default: [{ type: 'reject' }] }));
  const allRefs = (): string => ostree('refs', `--repo=${repoOf(root)}`);
  const state = async (): Promise<string> => JSON.stringify({ d: (await deployments()).map((d) => entryId(d)), refs: allRefs() });
  const refused = async (args: string[]): Promise<void> => {
    const before = await state();
    const r = basalt([...args, '--sysroot', root, '--esp', esp, '--policy', reject]);
    assert.equal(r.status, 8, `${args.join(' ')}: ${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, /is refused by .*reject-policy\.json/);
    assert.equal(await state(), before, `${args.join(' ')}: nothing deployed or imported`);
  };
  await publish('9.0');
  await refused(['switch', '--transport', 'oci', `${layout}:app`]);
  const switched = basalt(['switch', '--transport', 'oci', `${layout}:app`, '--sysroot', root, '--esp', esp, '--insecure-policy']);
  assert.equal(switched.status, 0, switched.stderr);
  await publish('9.1');
  await refused(['upgrade']);
  const broken = join(work, 'broken-policy.json');
  await writeFile(broken, '{"default": [');
  const bad = basalt(['upgrade', '--sysroot', root, '--esp', esp, '--policy', broken]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /broken-policy\.json/);
  const ok = basalt(['upgrade', '--sysroot', root, '--esp', esp, '--insecure-policy']);
  assert.equal(ok.status, 0, ok.stderr);
});
