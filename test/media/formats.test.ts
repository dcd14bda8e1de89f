import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readdir, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { convertDisk } from '../../src/media/convert.js';
import { detectImageFormat } from '../../src/media/disk-format.js';
import { requireTool, run, withTempDir } from '../harness/tools.js';

const MiB = 1024 * 1024;

/** A sparse raw image with data at awkward places: first cluster, a cluster edge, the very end. */
async function sampleRaw(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  await fh.truncate(size);
  await fh.write(randomBytes(4096), 0, 4096, 0);
  await fh.write(randomBytes(200_000), 0, 200_000, 5 * MiB - 1000);
  await fh.write(randomBytes(3 * MiB), 0, 3 * MiB, 600 * MiB);
  await fh.write(randomBytes(512), 0, 512, size - 512);
  await fh.close();
}

for (const format of ['qcow2', 'vmdk'] as const) {
  test(`raw → ${format} in TypeScript: qemu-img check passes and the content equals the raw image`, async () => {
    requireTool('qemu-img');
    await withTempDir(format, async (dir) => {
      const raw = join(dir, 'disk.raw');
      const size = 1024 * MiB + 3 * 512; // not a multiple of the cluster size
      await sampleRaw(raw, size);
      const out = join(dir, `disk.${format}`);
      await convertDisk(raw, format, out);
      assert.equal(await detectImageFormat(out), format);
      run('qemu-img', ['check', '-f', format, out]);
      const info = JSON.parse(run('qemu-img', ['info', '--output=json', out])) as { 'virtual-size': number; format: string };
      assert.equal(info.format, format);
      assert.ok(info['virtual-size'] >= size);
      assert.match(run('qemu-img', ['compare', '-f', 'raw', '-F', format, raw, out]), /identical/);
      assert.ok((await stat(out)).size < 16 * MiB, 'zero clusters are not stored');
    });
  });
}

test('an empty raw image converts, and a failed conversion leaves nothing behind', async () => {
  requireTool('qemu-img');
  await withTempDir('conv-empty', async (dir) => {
    const raw = join(dir, 'empty.raw');
    const fh = await open(raw, 'w');
    await fh.truncate(64 * MiB);
    await fh.close();
    await convertDisk(raw, 'qcow2', join(dir, 'e.qcow2'));
    run('qemu-img', ['check', join(dir, 'e.qcow2')]);
    assert.match(run('qemu-img', ['compare', raw, join(dir, 'e.qcow2')]), /identical/);
    await assert.rejects(convertDisk(join(dir, 'missing.raw'), 'qcow2', join(dir, 'm.qcow2')));
    await assert.rejects(stat(join(dir, 'm.qcow2')));
    assert.deepEqual((await readdir(dir)).filter((n) => n.includes('.tmp-')), [], 'no temp file left');
  });
});
