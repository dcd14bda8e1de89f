import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeTestImage, KVER } from './fixtures.js';
import { describeTree } from './tree-compare.js';
import { installToFilesystem } from '../../src/deploy/install.js';
import { deployImage } from '../../src/deploy/deploy-image.js';
import { mirrorBootEntries, entryId } from '../../src/deploy/bootentries.js';
import { directoryEsp } from '../../src/deploy/esp-target.js';
import { listDeployments, repoOf } from '../../src/deploy/sysroot.js';
import { readHostStatus, formatHostHuman } from '../../src/deploy/status.js';
import { unpackImage } from '../../src/oci/filesystem.js';
import { readImage } from '../../src/oci/image.js';
import { openSource } from '../../src/oci/transports/index.js';
import { requireTool } from '../harness/tools.js';

requireTool('ostree', "install Debian's ostree package (./scripts/setup does)");
requireTool('setcap', 'install libcap2-bin');

const work = await mkdtemp('/tmp/basalt-test-deploy-');
after(async () => {
  // ostree marks deployment directories immutable. Only the sysroot: chattr would block opening
  // the test trees' FIFOs, and it complains about symlinks but clears the rest.
  try {
    execFileSync('chattr', ['-R', '-i', root], { stdio: 'ignore', timeout: 30_000 });
  } catch {
    // reported for entries that cannot carry the flag; harmless
  }
  await rm(work, { recursive: true, force: true });
});
const layout = join(work, 'layout');
const root = join(work, 'root');
const esp = join(work, 'esp');
await mkdir(root);
const v1 = await writeTestImage(work, layout, 'v1', { version: '1.0', created: '2024-05-01T10:00:00Z' });
const v2 = await writeTestImage(work, layout, 'v2', { version: '2.0', created: '2024-05-01T10:00:00Z', extra: '2.0' });
const v3 = await writeTestImage(work, layout, 'v3', { version: '3.0', kernel: 'kernel v3', extra: '3.0' });
const ostree = (...args: string[]): string => execFileSync('ostree', args, { encoding: 'utf8' });
const layerRefs = (): string[] => ostree('refs', `--repo=${repoOf(root)}`, 'basalt/layer').split('\n').filter(Boolean);

const keys = join(work, 'keys.pub');
await writeFile(keys, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBasaltTestKeyxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx test@basalt\n');
const t0 = Date.now();
const installed = await installToFilesystem(root, v1.name, {
  rootMountSpec: 'UUID=0000-test',
  kargs: ['console=tty0'],
  rootSshAuthorizedKeys: keys,
  targetImgref: 'docker://registry.example/app:latest',
  espDir: esp,
  espMountSpec: 'PARTUUID=0000-esp',
});
const installMs = Date.now() - t0;

test('install imports each layer once and records the image in the commit', () => {
  assert.equal(installed.import.imported, 2);
  assert.equal(layerRefs().length, 2);
  const show = (key: string): string => ostree('show', `--repo=${repoOf(root)}`, `--print-metadata-key=${key}`, installed.deployment.checksum).trim();
  assert.equal(show('basalt.manifest-digest'), `'${v1.image.raw ? v1.image.raw.manifest.digest : installed.import.manifestDigest}'`.replace(/'undefined'/, ''));
  assert.equal(show('basalt.image-reference'), `'${v1.name}'`);
  assert.equal(show('version'), "'1.0'");
  assert.equal(show('basalt.created'), "'2024-05-01T10:00:00.000Z'");
  assert.match(ostree('show', `--repo=${repoOf(root)}`, installed.deployment.checksum), /Date: {2}2024-05-01 10:00:00/);
  console.log(`install to-filesystem of a 2-layer test image: ${installMs} ms`);
});

test('the deployed tree is the flattened image, /etc moved to /usr/etc, device nodes and fifos dropped', async () => {
  const flat = join(work, 'flat');
  const source = await openSource(v1.name);
  await unpackImage(await readImage(source), flat);
  await source.close();
  const checkout = join(work, 'checkout');
  ostree('checkout', `--repo=${repoOf(root)}`, installed.deployment.checksum, checkout);
  const expected = await describeTree(flat, (p) => (p === 'dev/null' || p === 'usr/share/fifo' ? undefined : p === 'etc' || p.startsWith('etc/') ? `usr/${p}` : p));
  const actual = await describeTree(checkout, (p) => (p === 'sysroot' || p === 'ostree' ? undefined : p));
  assert.deepEqual(Object.fromEntries(actual), Object.fromEntries(expected));
  // The specific OCI semantics, spelled out.
  assert.ok(!actual.has('usr/etc/gone.conf'), 'whiteout applied');
  assert.ok(!actual.has('usr/share/opq/a') && actual.has('usr/share/opq/c'), 'opaque directory applied');
  assert.match(actual.get('srv') ?? '', /^d 700 1000:1000 {2}user.dir=7570706572$/, 'upper directory metadata wins');
  assert.match(actual.get('usr/bin/ping') ?? '', /security.capability=/);
  assert.match(actual.get('usr/bin/tool') ?? '', /user.basalt=6b657074/);
  assert.ok(!actual.has('dev/null'));
});

test("kernel arguments come from kargs.d (architecture-matched), the flags and basalt's deployment karg", async () => {
  const [d] = await listDeployments(root);
  assert.ok(d);
  const opts = d.options.split(' ');
  const serial = `default/${d.checksum}.0`;
  assert.deepEqual(opts.filter((o) => !o.startsWith('ostree=')), ['root=UUID=0000-test', 'rw', 'console=ttyS0,115200', 'quiet', 'console=tty0', `basalt.deployment=${serial}`]);
  assert.deepEqual(installed.kargs, opts.filter((o) => !o.startsWith('ostree=')));
});

test('origin, /var seeding and root SSH keys', async () => {
  const { checksum, deploySerial } = installed.deployment;
  const dep = join(root, 'ostree/deploy/default/deploy', `${checksum}.${deploySerial}`);
  const origin = await readFile(`${dep}.origin`, 'utf8');
  assert.match(origin, /container-image-reference=ostree-unverified-registry:registry.example\/app:latest/);
  assert.equal(await readFile(join(root, 'ostree/deploy/default/var/lib/app/data.txt'), 'utf8'), 'image var content\n');
  const snippet = await readFile(join(dep, 'etc/tmpfiles.d/basalt-root-ssh.conf'), 'utf8');
  assert.match(snippet, /^f~ \/root\/.ssh\/authorized_keys 0600 root root - /m);
  assert.equal(await readFile(join(dep, 'etc/hostname'), 'utf8'), 'basalt-test\n');
});

test('the ESP gets an fstab line in the deployment and a mount point in the sysroot /boot', async () => {
  const { checksum, deploySerial } = installed.deployment;
  const fstab = await readFile(join(root, 'ostree/deploy/default/deploy', `${checksum}.${deploySerial}`, 'etc/fstab'), 'utf8');
  assert.match(fstab, /^PARTUUID=0000-esp \/boot\/efi vfat umask=0077,shortname=winnt,nofail 0 2$/m);
  assert.equal(fstab.match(/\/boot\/efi/g)?.length, 1);
  assert.deepEqual(await readdir(join(root, 'boot/efi')), []);
  await assert.rejects(installToFilesystem(join(work, 'bad-spec'), v1.name, { espMountSpec: 'sda1' }), /not PARTUUID=/);
});

test('status of a sysroot with one deployment', async () => {
  const host = await readHostStatus({ sysroot: root });
  assert.equal(host.apiVersion, 'org.basalt/v1');
  assert.equal(host.kind, 'BasaltHost');
  assert.deepEqual(host.spec.image, { image: 'registry.example/app:latest', transport: 'registry' });
  assert.equal(host.status.booted, null);
  assert.equal(host.status.rollback, null);
  assert.equal(host.status.default?.image?.imageDigest, installed.import.manifestDigest);
  assert.equal(host.status.default?.image?.version, '1.0');
  assert.equal(host.status.default?.ostree.checksum, installed.deployment.checksum);
  assert.match(formatHostHuman(host), /Default image: registry.example\/app:latest/);
});

const entryNames = async (): Promise<string[]> => (await readdir(join(esp, 'loader/entries'))).sort();

test('ESP: one stable entry with the ostree options, kernel and initramfs, loader.conf without a default', async () => {
  const id = entryId(installed.deployment);
  assert.deepEqual(await entryNames(), [`basalt-${id}.conf`]);
  const entry = await readFile(join(esp, 'loader/entries', `basalt-${id}.conf`), 'utf8');
  assert.match(entry, /^sort-key basalt$/m);
  assert.match(entry, /^options root=UUID=0000-test rw .* ostree=\/ostree\/boot\.[01]\/default\/[0-9a-f]{64}\/0$/m);
  const linux = /^linux \/(.*)$/m.exec(entry)?.[1] ?? '';
  assert.equal(await readFile(join(esp, linux), 'utf8'), 'kernel v1\n');
  const initrd = /^initrd \/(.*)$/m.exec(entry)?.[1] ?? '';
  assert.equal(await readFile(join(esp, initrd), 'utf8'), 'initramfs for kernel v1\n');
  assert.ok(linux.endsWith(`vmlinuz-${KVER}`));
  const conf = await readFile(join(esp, 'loader/loader.conf'), 'utf8');
  assert.doesNotMatch(conf, /default/);
  assert.match(conf, /timeout/);
});

test('a second image imports only its changed layer; ESP names stay stable and the new entry sorts first', async () => {
  const first = await entryNames();
  const r = await deployImage(root, v2.name, { stateroot: 'default', rootMountSpec: 'UUID=0000-test' });
  assert.equal(r.import.imported, 1, 'only the changed layer is imported');
  assert.equal(layerRefs().length, 3);
  await mirrorBootEntries(root, directoryEsp(esp));
  const names = await entryNames();
  assert.equal(names.length, 2);
  assert.ok(first.every((n) => names.includes(n)), 'the v1 entry keeps its name');
  const version = async (name: string): Promise<number> => Number(/^version (\d+)$/m.exec(await readFile(join(esp, 'loader/entries', name), 'utf8'))?.[1]);
  const v2Name = `basalt-${entryId(r.deployment)}.conf`;
  assert.ok((await version(v2Name)) > (await version(first[0] as string)), 'newest deployment has the higher version (sorts first)');

  const host = await readHostStatus({ sysroot: root });
  assert.equal(host.status.default?.image?.version, '2.0');
  assert.equal(host.status.rollback?.image?.version, '1.0');
  assert.equal(host.status.default?.image?.imageDigest, r.import.manifestDigest);
});

test('a third deployment drops the oldest: its entry goes, the shared kernel stays, a new kernel appears', async () => {
  const before = await entryNames();
  const r = await deployImage(root, v3.name, { stateroot: 'default' });
  const result = await mirrorBootEntries(root, directoryEsp(esp));
  const names = await entryNames();
  const deployments = await listDeployments(root);
  assert.equal(deployments.length, 2);
  assert.deepEqual(names, deployments.map((d) => `basalt-${entryId(d)}.conf`).sort());
  assert.ok(names.includes(`basalt-${entryId(r.deployment)}.conf`));
  assert.equal(before.filter((n) => names.includes(n)).length, 1, 'the v2 entry survives under its name');
  assert.ok(result.removed.some((p) => p.startsWith('loader/entries/')));
  const kernels = (await readdir(join(esp, 'basalt'))).length;
  assert.equal(kernels, 2, 'v2 (shared with v1) and v3 kernels');
});

test('boot counting names are kept when entries are rewritten', async () => {
  const counted = join(work, 'esp-counted');
  await mirrorBootEntries(root, directoryEsp(counted), { bootCountingTries: 3 });
  const dir = join(counted, 'loader/entries');
  const names = (await readdir(dir)).sort();
  assert.ok(names.every((n) => /\+3\.conf$/.test(n)));
  // systemd-boot counted one failed try on the first entry.
  const tried = (names[0] as string).replace('+3.conf', '+2-1.conf');
  await rename(join(dir, names[0] as string), join(dir, tried));
  await mirrorBootEntries(root, directoryEsp(counted), { bootCountingTries: 3 });
  const again = (await readdir(dir)).sort();
  assert.equal(again.length, 2);
  assert.ok(again.includes(tried));
});
