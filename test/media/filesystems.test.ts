import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createFatImage } from '../../src/media/fat.js';
import { createExt4Image } from '../../src/media/ext4.js';
import { createDiskImage, diskIdentifiers } from '../../src/media/disk-image.js';
import { readGpt } from '../../src/media/gpt-reader.js';
import { PartitionType } from '../../src/media/partition-types.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { requireTool, run, withTempDir } from '../harness/tools.js';

const MiB = 1024 * 1024;

async function espTree(dir: string): Promise<void> {
  await mkdir(join(dir, 'EFI/BOOT'), { recursive: true });
  await mkdir(join(dir, 'loader/entries'), { recursive: true });
  await writeFile(join(dir, 'EFI/BOOT/BOOTX64.EFI'), Buffer.alloc(100_000, 7));
  await writeFile(join(dir, 'loader/loader.conf'), 'timeout 3\n');
  await writeFile(join(dir, 'loader/entries/basalt-ostree-0.conf'), 'title x\nlinux /vmlinuz\n');
}

async function rootTree(dir: string): Promise<void> {
  await mkdir(join(dir, 'usr/bin'), { recursive: true });
  await mkdir(join(dir, 'etc'), { recursive: true });
  await writeFile(join(dir, 'etc/hostname'), 'basalt\n');
  await writeFile(join(dir, 'usr/bin/tool'), Buffer.alloc(300_000, 1), { mode: 0o755 });
  await symlink('usr/bin', join(dir, 'bin'));
}


test('ESP image: mkfs.vfat + mcopy of a staging tree, listed by mdir', async () => {
  requireTool('mkfs.vfat');
  requireTool('mdir');
  await withTempDir('fat', async (dir) => {
    await espTree(join(dir, 'esp'));
    const img = join(dir, 'esp.img');
    await createFatImage({ path: img, sourceDir: join(dir, 'esp'), size: 64 * MiB, volumeId: '1234ABCD', sourceDateEpoch: 1700000000 });
    const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
    assert.match(run('mdir', ['-i', img, '-b', '-/', '::/'], { env }), /::\/EFI\/BOOT\/BOOTX64\.EFI/);
    const entries = run('mdir', ['-i', img, '-b', '::/loader/entries'], { env });
    assert.match(entries, /basalt-ostree-0\.conf/);
    assert.match(run('mdir', ['-i', img, '::/'], { env }), /Volume Serial Number is 1234-ABCD/);
    assert.equal(run('mtype', ['-i', img, '::/loader/loader.conf'], { env }), 'timeout 3\n');
    await assert.rejects(createFatImage({ path: img, sourceDir: join(dir, 'esp'), size: 8 * MiB, volumeId: '1234ABCD' }), (e) => isBasaltError(e, 'usage'));
  });
});

test('root image: mkfs.ext4 -d with label and UUID, contents seen by debugfs', async () => {
  requireTool('mkfs.ext4');
  requireTool('debugfs');
  await withTempDir('ext4', async (dir) => {
    await rootTree(join(dir, 'root'));
    const opts = { sourceDir: join(dir, 'root'), size: 128 * MiB, label: 'root', uuid: '0b5f1f4e-1111-4222-8333-444455556666', hashSeed: '0b5f1f4e-1111-4222-8333-777755556666', sourceDateEpoch: 1700000000 };
    await createExt4Image({ ...opts, path: join(dir, 'a.img') });
    const listing = run('debugfs', ['-R', 'ls -l /usr/bin', join(dir, 'a.img')]);
    assert.match(listing, /100755 .* 300000 .* tool/);
    assert.match(run('debugfs', ['-R', 'stat /bin', join(dir, 'a.img')]), /Fast link dest: "usr\/bin"/);
    const super_ = run('dumpe2fs', ['-h', join(dir, 'a.img')]);
    assert.match(super_, /Filesystem volume name:\s+root/);
    assert.match(super_, /Filesystem UUID:\s+0b5f1f4e-1111-4222-8333-444455556666/);
    // Not byte-reproducible: mkfs.ext4 -d copies every file's atime and ctime from the tree,
    // and reading the tree moves atimes. The identifiers basalt controls are fixed.
  });
});

test('root image: a tree that does not fit is a usage error naming the tree and the size', async () => {
  requireTool('mkfs.ext4');
  await withTempDir('ext4-small', async (dir) => {
    const root = join(dir, 'root');
    await mkdir(root);
    await writeFile(join(root, 'big'), Buffer.alloc(40 * MiB, 1));
    await assert.rejects(
      createExt4Image({ path: join(dir, 'r.img'), sourceDir: root, size: 16 * MiB, label: 'root', uuid: '0b5f1f4e-1111-4222-8333-444455556666', hashSeed: '0b5f1f4e-1111-4222-8333-444455556666', sizeFromUser: true }),
      (e) => isBasaltError(e, 'usage') && e.message.includes(root) && /does not fit/.test(e.message),
    );
    await assert.rejects(stat(join(dir, 'r.img')), 'no half-made image is left');
  });
});

test('createDiskImage: GPT with ESP + root at 1 MiB boundaries, filesystems in place, sparse, stable identifiers', async () => {
  for (const t of ['mkfs.vfat', 'mkfs.ext4', 'sgdisk', 'debugfs']) requireTool(t);
  await withTempDir('disk', async (dir) => {
    await espTree(join(dir, 'esp'));
    await rootTree(join(dir, 'root'));
    const options = { espDir: join(dir, 'esp'), rootDir: join(dir, 'root'), rootLabel: 'root', rootFsType: 'ext4' as const, seed: 'disk-test', sourceDateEpoch: 1700000000 };
    const started = Date.now();
    const disk = await createDiskImage({ ...options, path: join(dir, 'out/disk.raw') });
    console.log(`[time] createDiskImage (small tree): ${((Date.now() - started) / 1000).toFixed(2)} s`);
    const ids = diskIdentifiers('disk-test');
    assert.deepEqual(disk.partitions.map((p) => [p.name, p.typeGuid, p.partUuid]), [['EFI-SYSTEM', PartitionType.esp, ids.espPartUuid], ['root', PartitionType.rootX86_64, ids.rootPartUuid]]);
    assert.match(run('sgdisk', ['-v', disk.path]), /No problems found/);
    const table = await readGpt(disk.path);
    const root = table.partitions[1];
    assert.ok(root);
    assert.equal(root.offset % MiB, 0);
    // The root filesystem is readable at its partition's offset.
    const rootImage = join(dir, 'root-part.img');
    run('dd', [`if=${disk.path}`, `of=${rootImage}`, 'bs=1M', `skip=${root.offset / MiB}`, `count=${root.size / MiB}`, 'status=none']);
    assert.match(run('debugfs', ['-R', 'cat /etc/hostname', rootImage]), /basalt/);
    const st = await stat(disk.path);
    assert.ok(st.blocks * 512 < st.size / 4, `the disk stays sparse (${st.blocks * 512} of ${st.size} bytes allocated)`);
    assert.deepEqual((await readdir(join(dir, 'out'))).sort(), ['disk.raw'], 'no temp files left beside the output');
    const again = await createDiskImage({ ...options, path: join(dir, 'out/disk2.raw') });
    const againTable = await readGpt(again.path);
    assert.deepEqual(againTable.partitions.map((p) => [p.offset, p.size, p.uniqueGuid]), table.partitions.map((p) => [p.offset, p.size, p.uniqueGuid]), 'same seed → same layout and GUIDs');
  });
});
