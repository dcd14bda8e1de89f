import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, symlink, writeFile, link } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isBasaltError } from '../../../src/oci/errors.js';
import { readTar, TarWriter, type TarHeader } from '../../../src/oci/layer/tar.js';
import { requireTool, run, withTempDir } from '../../harness/tools.js';
import { collect, makeTar, readAll } from './helpers.js';

/** security.capability for cap_net_raw+ep, then bytes that break string-based parsers. */
const CAPABILITY = Buffer.from('0100000200200000000000000000000000000000', 'hex');
const NASTY = Buffer.from([0x00, 0xff, 0x0a, 0x3d, 0x20, 0x80, 0x00]);

test('writer → reader round trip keeps long names, long links, binary xattrs and hardlinks', async () => {
  const longDir = `${'d'.repeat(90)}/${'e'.repeat(90)}`; // 181 bytes: fits ustar prefix + name
  const veryLong = `${'x'.repeat(120)}/${'y'.repeat(120)}/${'z'.repeat(60)}`; // needs PAX
  const longLink = `../${'t'.repeat(200)}`;
  const tar = await makeTar([
    { path: 'dir', type: 'directory', mode: 0o1777 },
    { path: `${longDir}/file`, data: 'long ustar' },
    { path: veryLong, data: 'pax path', mode: 0o4755 },
    { path: 'caps', data: 'binary', xattrs: new Map([['security.capability', CAPABILITY], ['user.nasty', NASTY], ['user.empty', Buffer.alloc(0)]]) },
    { path: 'link', type: 'symlink', linkname: longLink },
    { path: 'hard', type: 'hardlink', linkname: 'caps' },
    { path: 'big-ids', data: '', uid: 3_000_000, gid: 70_000_000, uname: 'u'.repeat(40), gname: 'builder' },
    { path: 'ünïcödé/файл', data: 'utf8' },
    { path: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 },
    { path: 'dev/sda', type: 'block', mode: 0o660, devmajor: 8, devminor: 0 },
    { path: 'fifo', type: 'fifo', mode: 0o600 },
  ]);
  const entries = await readAll(tar);
  assert.deepEqual(entries.map((e) => e.path), ['dir', `${longDir}/file`, veryLong, 'caps', 'link', 'hard', 'big-ids', 'ünïcödé/файл', 'dev/null', 'dev/sda', 'fifo']);
  const byPath = new Map(entries.map((e) => [e.path, e]));
  assert.equal(byPath.get('dir')?.mode, 0o1777);
  assert.equal(byPath.get('dir')?.type, 'directory');
  assert.equal(byPath.get(veryLong)?.data.toString(), 'pax path');
  assert.equal(byPath.get(veryLong)?.mode, 0o4755);
  const caps = byPath.get('caps');
  assert.deepEqual(caps?.xattrs?.get('security.capability'), CAPABILITY);
  assert.deepEqual(caps?.xattrs?.get('user.nasty'), NASTY);
  assert.deepEqual(caps?.xattrs?.get('user.empty'), Buffer.alloc(0));
  assert.equal(byPath.get('link')?.linkname, longLink);
  assert.equal(byPath.get('hard')?.type, 'hardlink');
  assert.equal(byPath.get('hard')?.linkname, 'caps');
  assert.equal(byPath.get('big-ids')?.uid, 3_000_000);
  assert.equal(byPath.get('big-ids')?.gid, 70_000_000);
  assert.equal(byPath.get('big-ids')?.uname, 'u'.repeat(40));
  assert.equal(byPath.get('ünïcödé/файл')?.data.toString(), 'utf8');
  assert.deepEqual([byPath.get('dev/null')?.devmajor, byPath.get('dev/null')?.devminor], [1, 3]);
  assert.equal(byPath.get('dev/sda')?.type, 'block');
  assert.equal(byPath.get('fifo')?.type, 'fifo');
});

test('writer output is deterministic and only uses PAX when needed', async () => {
  const specs = [
    { path: 'a', data: 'x', xattrs: new Map([['user.b', Buffer.from('2')], ['user.a', Buffer.from('1')]]) },
    { path: 'short', data: 'plain' },
  ];
  const one = await makeTar(specs);
  const two = await makeTar([{ ...specs[0]!, xattrs: new Map([['user.a', Buffer.from('1')], ['user.b', Buffer.from('2')]]) }, specs[1]!]);
  assert.deepEqual(one, two);
  const plain = await makeTar([{ path: 'short', data: 'plain' }]);
  assert.equal(plain.length, 512 + 512 + 1024, 'a short entry needs no PAX header');
  assert.equal(plain.toString('latin1', 257, 263), 'ustar\0');
});

test('GNU tar reads what the writer writes, xattrs included', async () => {
  requireTool('tar');
  await withTempDir('tar-gnu-read', async (dir) => {
    const tarPath = join(dir, 'ours.tar');
    await writeFile(tarPath, await makeTar([
      { path: 'd', type: 'directory' },
      { path: `d/${'n'.repeat(150)}/${'m'.repeat(120)}`, data: 'deep' },
      { path: 'd/f', data: 'cap', xattrs: new Map([['user.bin', NASTY]]) },
      { path: 'd/h', type: 'hardlink', linkname: 'd/f' },
    ]));
    const out = join(dir, 'out');
    await mkdir(out);
    run('tar', ['--xattrs', "--xattrs-include=*", '-xf', tarPath, '-C', out]);
    assert.equal(await readFile(join(out, 'd', 'n'.repeat(150), 'm'.repeat(120)), 'utf8'), 'deep');
    assert.equal(await readFile(join(out, 'd/h'), 'utf8'), 'cap');
    requireTool('getfattr');
    const dump = run('getfattr', ['-n', 'user.bin', '-e', 'hex', join(out, 'd/f')]);
    assert.match(dump, new RegExp(`user.bin=0x${NASTY.toString('hex')}`));
  });
});

async function makeSourceTree(dir: string): Promise<string> {
  const src = join(dir, 'src');
  const deep = join(src, 'a'.repeat(99), 'b'.repeat(99));
  await mkdir(deep, { recursive: true });
  await writeFile(join(deep, 'c'.repeat(120)), 'long name');
  await writeFile(join(src, 'file'), 'content');
  await link(join(src, 'file'), join(src, 'hardlink'));
  await symlink(`../${'l'.repeat(150)}`, join(src, 'longlink'));
  return src;
}

test('reads GNU tar --format=gnu archives (././@LongLink names and links, base-256 ids)', async () => {
  requireTool('tar');
  await withTempDir('tar-gnu', async (dir) => {
    const src = await makeSourceTree(dir);
    const tarPath = join(dir, 'gnu.tar');
    run('tar', ['--format=gnu', '--owner=big:3000000', '--group=0', '-C', src, '-cf', tarPath, '.']);
    const entries = await readAll(await readFile(tarPath));
    const byPath = new Map(entries.map((e) => [e.path, e]));
    const longPath = `./${'a'.repeat(99)}/${'b'.repeat(99)}/${'c'.repeat(120)}`;
    assert.equal(byPath.get(longPath)?.data.toString(), 'long name');
    assert.equal(byPath.get('./longlink')?.linkname, `../${'l'.repeat(150)}`);
    assert.equal(byPath.get('./hardlink')?.type, 'hardlink');
    assert.equal(byPath.get('./file')?.uid, 3_000_000, 'base-256 uid');
    assert.equal(byPath.get('./file')?.uname, 'big');
  });
});

test('reads PAX archives from tar --format=posix --xattrs with a file capability', async () => {
  requireTool('tar');
  requireTool('setcap');
  await withTempDir('tar-pax', async (dir) => {
    const src = await makeSourceTree(dir);
    run('setcap', ['cap_net_raw+ep', join(src, 'file')]);
    run('setfattr', ['-n', 'user.binary', '-v', `0x${NASTY.toString('hex')}`, join(src, 'file')]);
    const tarPath = join(dir, 'pax.tar');
    run('tar', ['--format=posix', '--xattrs', '--xattrs-include=*', '-C', src, '-cf', tarPath, '.']);
    const entries = await readAll(await readFile(tarPath));
    const file = entries.find((e) => e.path === './file');
    assert.deepEqual(file?.xattrs?.get('security.capability'), CAPABILITY);
    assert.deepEqual(file?.xattrs?.get('user.binary'), NASTY);
    assert.ok(file && file.mtime > 1e9, 'mtime from the PAX record');
    assert.ok(entries.some((e) => e.path === `./${'a'.repeat(99)}/${'b'.repeat(99)}/${'c'.repeat(120)}`));
  });
});

test('reads old v7 archives', async () => {
  requireTool('tar');
  await withTempDir('tar-v7', async (dir) => {
    await mkdir(join(dir, 'src/sub'), { recursive: true });
    await writeFile(join(dir, 'src/sub/f'), 'v7 data');
    run('tar', ['--format=v7', '-C', join(dir, 'src'), '-cf', join(dir, 'v7.tar'), 'sub']);
    const entries = await readAll(await readFile(join(dir, 'v7.tar')));
    assert.deepEqual(entries.map((e) => [e.path, e.type]), [['sub', 'directory'], ['sub/f', 'file']]);
    assert.equal(entries[1]?.data.toString(), 'v7 data');
    assert.equal(entries[1]?.uname, undefined);
  });
});

test('reads libarchive-style LIBARCHIVE.xattr records (base64 values)', async () => {
  const value = Buffer.from([0, 1, 255]);
  const records = `LIBARCHIVE.xattr.user.a%3Db=${value.toString('base64')}\n`;
  const record = `${String(records.length + 3)} ${records}`;
  assert.equal(Buffer.byteLength(record), records.length + 3);
  const pax = Buffer.alloc(512);
  pax.write(record);
  const header = Buffer.alloc(512);
  const { encodeHeader } = await import('../../../src/oci/layer/tar.js');
  const paxHeader = encodeHeader({ path: 'PaxHeaders/f', type: 'file', mode: 0o644, uid: 0, gid: 0, size: Buffer.byteLength(record), mtime: 0 }).blocks;
  paxHeader.write('x', 156, 'latin1');
  fixChecksum(paxHeader);
  header.set(encodeHeader({ path: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 }).blocks);
  const entries = await readAll(Buffer.concat([paxHeader, pax, header, Buffer.alloc(1024)]));
  assert.deepEqual(entries[0]?.xattrs?.get('user.a=b'), value);
});

function fixChecksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
}

test('a truncated archive is an integrity error naming the source', async () => {
  const tar = await makeTar([{ path: 'f', data: Buffer.alloc(5000, 7) }, { path: 'g', data: 'x' }]);
  for (const cut of [700, 512 + 4000, 512 + 5120 + 100]) {
    await assert.rejects(readAll(tar.subarray(0, cut), 'layer sha256:abc'), (e: unknown) => {
      assert.ok(isBasaltError(e, 'integrity'), String(e));
      assert.match((e as Error).message, /layer sha256:abc: truncated/);
      return true;
    });
  }
});

test('a bad header checksum is an integrity error naming the entry offset', async () => {
  const tar = await makeTar([{ path: 'f', data: 'abc' }, { path: 'g', data: 'x' }]);
  tar[1024 + 3] = (tar[1024 + 3] as number) ^ 0x01; // second header's name
  await assert.rejects(readAll(tar, 'my.tar'), (e: unknown) => isBasaltError(e, 'integrity') && /my\.tar: tar header at offset 1024 has a bad checksum/.test((e as Error).message));
});

test('unread bodies are skipped, dataOffset points at the data, the input is drained', async () => {
  const tar = await makeTar([{ path: 'a', data: Buffer.alloc(1000, 1) }, { path: 'b', data: 'second' }]);
  const padded = Buffer.concat([tar, Buffer.alloc(8192)]); // record padding after the trailer
  const input = Readable.from([padded]);
  const seen: Array<[string, number]> = [];
  let bData = '';
  for await (const entry of readTar(input, 't')) {
    seen.push([entry.path, entry.dataOffset]);
    if (entry.path === 'b') bData = (await collect(entry.body)).toString();
  }
  assert.deepEqual(seen, [['a', 512], ['b', 512 + 1024 + 512]]);
  assert.equal(bData, 'second');
  assert.equal(input.readableEnded, true);
  assert.equal(tar.subarray(512, 1512).every((b) => b === 1), true);
});

test('writer refuses a body whose length differs from the header size', async () => {
  const { PassThrough } = await import('node:stream');
  const out = new PassThrough();
  out.resume();
  const writer = new TarWriter(out);
  const header: TarHeader = { path: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 10, mtime: 0 };
  await assert.rejects(writer.add(header, Readable.from([Buffer.alloc(4)])), (e: unknown) => isBasaltError(e, 'invalid'));
});

test('a 300 MB stream passes through the reader with bounded memory', async () => {
  const fileSize = 100 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  const generateBody = (): Readable =>
    Readable.from((function* () {
      for (let sent = 0; sent < fileSize; sent += chunk.length) yield chunk;
    })());
  // The tar is produced on the fly by our writer and consumed by our reader.
  const { PassThrough } = await import('node:stream');
  const pipe = new PassThrough({ highWaterMark: 64 * 1024 });
  const writing = (async () => {
    const writer = new TarWriter(pipe);
    for (const name of ['one', 'two', 'three']) await writer.add({ path: name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: fileSize, mtime: 0 }, generateBody());
    await writer.finish();
  })();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  let total = 0;
  let index = 0;
  for await (const entry of readTar(pipe, 'generated')) {
    if (index++ === 1) continue; // the middle one is skipped unread
    for await (const data of entry.body) {
      total += (data as Buffer).length;
      peak = Math.max(peak, process.memoryUsage().rss);
    }
  }
  await writing;
  assert.equal(total, 2 * fileSize);
  assert.ok(peak - baseline < 64 * 1024 * 1024, `RSS grew by ${Math.round((peak - baseline) / 1048576)} MiB`);
});
