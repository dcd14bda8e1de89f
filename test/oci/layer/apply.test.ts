import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, readFile, readdir, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isBasaltError } from '../../../src/oci/errors.js';
import { applyLayer, unpackLayers } from '../../../src/oci/layer/apply.js';
import { compressStream } from '../../../src/oci/layer/compression.js';
import { requireTool, run, withTempDir } from '../../harness/tools.js';
import { collect, makeTar, type Spec } from './helpers.js';

const layer = async (specs: Spec[]): Promise<Readable> => Readable.from([await makeTar(specs)]);
const exists = (path: string): Promise<boolean> => lstat(path).then(() => true, () => false);

test('whiteouts and opaque directories across three layers', async () => {
  await withTempDir('apply-wh', async (dir) => {
    const layers = [
      await layer([
        { path: 'a', type: 'directory' }, { path: 'a/x', data: 'x' }, { path: 'a/y', data: 'y' },
        { path: 'a/sub', type: 'directory' }, { path: 'a/sub/z', data: 'z' },
        { path: 'keep', data: 'v1' }, { path: 'gone', data: 'gone' },
        { path: 'opq', type: 'directory' }, { path: 'opq/lower', data: 'l' }, { path: 'opq/lowerdir/f', data: 'f' },
        { path: 'becomes-dir', data: 'file' }, { path: 'becomes-file', type: 'directory' }, { path: 'becomes-file/child', data: 'c' },
      ]),
      await layer([
        { path: '.wh.gone', data: '' }, { path: 'a/.wh.x', data: '' },
        { path: 'opq', type: 'directory', mode: 0o700 }, { path: 'opq/.wh..wh..opq', data: '' }, { path: 'opq/new', data: 'n' },
        { path: 'becomes-dir', type: 'directory' }, { path: 'becomes-dir/inner', data: 'i' },
        { path: 'becomes-file', data: 'now a file' },
        { path: 'keep', data: 'v2', mode: 0o600 },
      ]),
      await layer([
        { path: 'a/.wh.sub', data: '' }, { path: 'gone', data: 'back' },
        // The opaque marker after this layer's own child: the child stays.
        { path: 'opq/mine', data: 'm' }, { path: 'opq/.wh..wh..opq', data: '' },
        { path: './.wh..wh.plnk', data: '' },
      ]),
    ];
    const target = join(dir, 'root');
    const summaries = await unpackLayers(layers, target);
    assert.deepEqual(summaries.map((s) => s.whiteouts), [0, 3, 3]);
    const list = async (p: string): Promise<string[]> => (await readdir(join(target, p))).sort();
    assert.deepEqual(await list(''), ['a', 'becomes-dir', 'becomes-file', 'gone', 'keep', 'opq']);
    assert.deepEqual(await list('a'), ['y']);
    assert.deepEqual(await list('opq'), ['mine']);
    assert.equal((await stat(join(target, 'opq'))).mode & 0o7777, 0o700);
    assert.equal(await readFile(join(target, 'gone'), 'utf8'), 'back');
    assert.equal(await readFile(join(target, 'keep'), 'utf8'), 'v2');
    assert.equal((await stat(join(target, 'keep'))).mode & 0o7777, 0o600);
    assert.deepEqual(await list('becomes-dir'), ['inner']);
    assert.equal(await readFile(join(target, 'becomes-file'), 'utf8'), 'now a file');
  });
});

test('metadata: upper wins on existing dirs, dir mtimes survive their content, links, fifos, devices', async () => {
  await withTempDir('apply-meta', async (dir) => {
    const target = join(dir, 'root');
    await applyLayer(await layer([{ path: 'd', type: 'directory', mode: 0o755, mtime: 1000 }, { path: 'd/lower', data: 'l' }]), target);
    const summary = await applyLayer(await layer([
      { path: 'd', type: 'directory', mode: 0o750, uid: 1234, gid: 5678, mtime: 2000, xattrs: new Map([['user.dir', Buffer.from([0, 255])]]) },
      { path: 'd/new', data: 'new', uid: 42, gid: 43, mtime: 3000, mode: 0o4755 },
      { path: 'd/hard', type: 'hardlink', linkname: 'd/new' },
      { path: 'd/hard-lower', type: 'hardlink', linkname: './d/lower' },
      { path: 'd/sym', type: 'symlink', linkname: '/nowhere', mtime: 4000 },
      { path: 'd/fifo', type: 'fifo', mode: 0o640 },
      { path: 'd/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 },
    ]), target);
    const d = await stat(join(target, 'd'));
    assert.equal(d.mode & 0o7777, 0o750);
    assert.equal(d.mtimeMs, 2000_000, 'directory mtime set after its content was written');
    assert.deepEqual([d.uid, d.gid], [1234, 5678]);
    const f = await stat(join(target, 'd/new'));
    assert.equal(f.mode & 0o7777, 0o4755, 'setuid survives chown');
    assert.deepEqual([f.uid, f.gid, f.mtimeMs], [42, 43, 3000_000]);
    assert.equal((await stat(join(target, 'd/hard'))).ino, f.ino);
    assert.equal((await stat(join(target, 'd/hard-lower'))).ino, (await stat(join(target, 'd/lower'))).ino);
    assert.equal(await readlink(join(target, 'd/sym')), '/nowhere');
    assert.equal((await lstat(join(target, 'd/sym'))).mtimeMs, 4000_000);
    assert.ok((await lstat(join(target, 'd/fifo'))).isFIFO());
    assert.ok((await lstat(join(target, 'd/null'))).isCharacterDevice(), 'devices are made as root');
    assert.deepEqual(summary.skippedDevices, []);
    assert.deepEqual(summary.skippedXattrs, []);
    requireTool('getfattr');
    assert.match(run('getfattr', ['-n', 'user.dir', '-e', 'hex', join(target, 'd')]), /user\.dir=0x00ff/);
  });
});

test('file capabilities survive (set after chown) and devices are skipped when disabled', async () => {
  requireTool('setfattr');
  await withTempDir('apply-caps', async (dir) => {
    const target = join(dir, 'root');
    const capability = Buffer.from('0100000200200000000000000000000000000000', 'hex');
    const summary = await applyLayer(await layer([
      { path: 'ping', data: 'elf', mode: 0o755, uid: 7, xattrs: new Map([['security.capability', capability]]) },
      { path: 'weird name\nwith newline', data: 'w', xattrs: new Map([['user.k', Buffer.from('v')]]) },
      { path: 'sda', type: 'block', devmajor: 8, devminor: 0 },
    ]), target, { devices: false });
    assert.deepEqual(summary.skippedDevices, ['sda']);
    assert.equal(await exists(join(target, 'sda')), false);
    assert.match(run('getcap', [join(target, 'ping')]), /cap_net_raw[=+]ep/);
    assert.match(run('getfattr', ['-n', 'user.k', join(target, 'weird name\nwith newline')]), /user\.k="v"/);
  });
});

/** A target beside an "outside" directory whose content must never change. */
async function escapeFixture(dir: string): Promise<{ target: string; outside: string; snapshot: () => Promise<string> }> {
  const target = join(dir, 'target');
  const outside = join(dir, 'outside');
  await mkdir(target);
  await mkdir(outside);
  await writeFile(join(outside, 'secret'), 'secret');
  await writeFile(join(outside, 'victim'), 'victim');
  const snapshot = async (): Promise<string> => {
    const names = (await readdir(dir)).sort();
    const inside = (await readdir(outside)).sort();
    const contents = await Promise.all(inside.map((n) => readFile(join(outside, n), 'utf8')));
    return JSON.stringify({ names, inside, contents });
  };
  return { target, outside, snapshot };
}

const ESCAPES: Array<{ name: string; lower?: Spec[]; specs: (outside: string) => Spec[] }> = [
  { name: 'a ".." path', specs: () => [{ path: '../outside/evil', data: 'x' }] },
  { name: 'a ".." in the middle', specs: () => [{ path: 'a/../../outside/evil', data: 'x' }] },
  { name: 'a symlink created earlier in the same layer', specs: () => [{ path: 'esc', type: 'symlink', linkname: '../outside' }, { path: 'esc/evil', data: 'x' }] },
  { name: 'an absolute symlink', specs: (outside) => [{ path: 'esc', type: 'symlink', linkname: outside }, { path: 'esc/evil', data: 'x' }] },
  { name: 'a symlink from a lower layer as a parent component', lower: [{ path: 'lnk', type: 'symlink', linkname: '../../outside' }], specs: () => [{ path: 'lnk/sub/evil', data: 'x' }] },
  { name: 'a chain of symlinks', specs: () => [{ path: 'b', type: 'symlink', linkname: 'c/../..' }, { path: 'c', type: 'directory' }, { path: 'a', type: 'symlink', linkname: 'b/outside' }, { path: 'a/evil', data: 'x' }] },
  { name: 'a symlink loop', specs: () => [{ path: 'loop', type: 'symlink', linkname: 'loop' }, { path: 'loop/evil', data: 'x' }] },
  { name: 'a hardlink to outside via ".."', specs: () => [{ path: 'h', type: 'hardlink', linkname: '../outside/secret' }] },
  { name: 'a hardlink to outside via a symlink', specs: () => [{ path: 'esc', type: 'symlink', linkname: '../outside' }, { path: 'h', type: 'hardlink', linkname: 'esc/secret' }] },
  { name: 'a whiteout through a symlink', specs: () => [{ path: 'esc', type: 'symlink', linkname: '../outside' }, { path: 'esc/.wh.secret', data: '' }] },
  { name: 'an opaque marker through a symlink', specs: () => [{ path: 'esc', type: 'symlink', linkname: '../outside' }, { path: 'esc/.wh..wh..opq', data: '' }] },
  { name: 'a directory entry through a symlink', specs: () => [{ path: 'esc', type: 'symlink', linkname: '../outside' }, { path: 'esc/newdir', type: 'directory' }] },
];

for (const escape of ESCAPES) {
  test(`refuses ${escape.name}, writing nothing outside`, async () => {
    await withTempDir('apply-escape', async (dir) => {
      const { target, outside, snapshot } = await escapeFixture(dir);
      const before = await snapshot();
      if (escape.lower) await applyLayer(await layer(escape.lower), target, { what: 'lower' });
      await assert.rejects(applyLayer(await layer(escape.specs(outside)), target, { what: 'layer sha256:bad' }), (e: unknown) => {
        assert.ok(isBasaltError(e, 'unsafe'), `expected unsafe, got ${String(e)}`);
        assert.match((e as Error).message, /^layer sha256:bad: /);
        return true;
      });
      assert.equal(await snapshot(), before);
    });
  });
}

test('leading "/" and "./" stay inside; relative symlinks inside are followed; a final symlink is replaced, not written through', async () => {
  await withTempDir('apply-inside', async (dir) => {
    const { target, outside, snapshot } = await escapeFixture(dir);
    const before = await snapshot();
    await applyLayer(await layer([
      { path: '/etc/passwd', data: 'root' },
      { path: './etc/./group', data: 'group' },
      { path: 'real', type: 'directory' },
      { path: 'in', type: 'symlink', linkname: './real/../real' },
      { path: 'in/file', data: 'via symlink' },
      { path: 'victim', type: 'symlink', linkname: join(outside, 'victim') },
      { path: 'victim', data: 'replaced the link' },
    ]), target);
    assert.equal(await readFile(join(target, 'etc/passwd'), 'utf8'), 'root');
    assert.equal(await readFile(join(target, 'etc/group'), 'utf8'), 'group');
    assert.equal(await readFile(join(target, 'real/file'), 'utf8'), 'via symlink');
    assert.ok((await lstat(join(target, 'victim'))).isFile());
    assert.equal(await snapshot(), before);
  });
});

test('unpackLayers accepts compressed layers', async () => {
  await withTempDir('apply-compressed', async (dir) => {
    const tar = await makeTar([{ path: 'f', data: 'zstd layer' }]);
    const z = compressStream('zstd');
    const packed = collect(z as unknown as Readable);
    z.end(tar);
    await unpackLayers([Readable.from([await packed])], join(dir, 't'));
    assert.equal(await readFile(join(dir, 't/f'), 'utf8'), 'zstd layer');
  });
});

test('without privileges (as a non-root run would): ownership, xattrs and devices are reported as skipped', async () => {
  await withTempDir('apply-unprivileged', async (dir) => {
    const target = join(dir, 'root');
    const summary = await applyLayer(await layer([
      { path: 'f', data: 'x', uid: 99, gid: 99, xattrs: new Map([['user.a', Buffer.from('1')]]) },
      { path: 'tty', type: 'char', devmajor: 5, devminor: 0 },
    ]), target, { chown: false, xattrs: false, devices: false });
    assert.equal(summary.ownership, false);
    assert.deepEqual(summary.skippedDevices, ['tty']);
    assert.equal(summary.skippedXattrs.length, 1);
    assert.match(summary.skippedXattrs[0] as string, /^f: /);
    assert.equal((await stat(join(target, 'f'))).uid, process.getuid?.());
  });
});
