import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { link, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { packDirectory, type PackOptions } from '../../../src/oci/layer/pack.js';
import { requireTool, run, withTempDir } from '../../harness/tools.js';
import { collect, readAll } from './helpers.js';

async function pack(dir: string, options: PackOptions = {}): Promise<Buffer> {
  const out = new PassThrough();
  const done = collect(out);
  await packDirectory(dir, out, options);
  return done;
}

async function makeTree(dir: string): Promise<void> {
  await mkdir(join(dir, 'usr/bin'), { recursive: true });
  await mkdir(join(dir, 'usr-local'));
  await writeFile(join(dir, 'usr/bin/tool'), 'binary');
  await link(join(dir, 'usr/bin/tool'), join(dir, 'usr/bin/alias'));
  await symlink('usr/bin', join(dir, 'bin'));
  await writeFile(join(dir, 'Zebra'), 'upper case sorts first');
  run('mknod', [join(dir, 'null'), 'c', '1', '3']);
  run('mknod', [join(dir, 'fifo'), 'p']);
  run('setfattr', ['-n', 'user.bin', '-v', '0x00ff0a', join(dir, 'usr/bin/tool')]);
}

test('packs a directory sorted, with hardlinks, devices and xattrs, and no names', async () => {
  requireTool('setfattr');
  await withTempDir('pack', async (dir) => {
    const tree = join(dir, 'tree');
    await mkdir(tree);
    await makeTree(tree);
    await new Promise<void>((resolve, reject) => {
      // A live socket, to check it is skipped.
      const server = createServer().listen(join(tree, 'live.sock'), () => resolve());
      server.on('error', reject);
      server.unref();
    });
    const entries = await readAll(await pack(tree, { ownerRoot: true }));
    assert.deepEqual(entries.map((e) => `${e.path}:${e.type}`), [
      'Zebra:file', 'bin:symlink', 'fifo:fifo', 'null:char', 'usr:directory', 'usr-local:directory',
      'usr/bin:directory', 'usr/bin/alias:file', 'usr/bin/tool:hardlink',
    ]);
    const byPath = new Map(entries.map((e) => [e.path, e]));
    assert.equal(byPath.get('usr/bin/tool')?.linkname, 'usr/bin/alias', 'the first path in byte order holds the data');
    assert.deepEqual(byPath.get('usr/bin/alias')?.xattrs?.get('user.bin'), Buffer.from([0, 0xff, 0x0a]));
    assert.deepEqual([byPath.get('null')?.devmajor, byPath.get('null')?.devminor], [1, 3]);
    assert.equal(byPath.get('bin')?.linkname, 'usr/bin');
    for (const e of entries) {
      assert.equal(e.uname, undefined);
      assert.equal(e.gname, undefined);
      assert.equal(e.uid, 0);
    }
  });
});

test('same tree, different mtimes on disk, same SOURCE_DATE_EPOCH: identical bytes', async () => {
  requireTool('setfattr');
  await withTempDir('pack-repro', async (dir) => {
    const one = join(dir, 'one');
    const two = join(dir, 'two');
    await mkdir(one);
    await mkdir(two);
    await makeTree(one);
    await new Promise((r) => setTimeout(r, 1100));
    await makeTree(two);
    await utimes(join(two, 'Zebra'), 2_000_000_000, 2_000_000_000);
    const a = await pack(one, { sourceDateEpoch: 1_700_000_000 });
    const b = await pack(two, { sourceDateEpoch: 1_700_000_000 });
    assert.deepEqual(a, b);
    assert.ok((await readAll(a)).every((e) => e.mtime === 1_700_000_000));
    // Without clamping the differing mtimes show.
    assert.notDeepEqual(await pack(one), await pack(two));
    // Older mtimes are kept (clamped, not replaced).
    await utimes(join(one, 'Zebra'), 1000, 1000);
    assert.equal((await readAll(await pack(one, { sourceDateEpoch: 1_700_000_000 }))).find((e) => e.path === 'Zebra')?.mtime, 1000);
  });
});
