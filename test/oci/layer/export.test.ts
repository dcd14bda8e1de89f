import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { applyLayer, unpackLayers } from '../../../src/oci/layer/apply.js';
import { exportFlattened } from '../../../src/oci/layer/export.js';
import { packDirectory } from '../../../src/oci/layer/pack.js';
import { withTempDir } from '../../harness/tools.js';
import { collect, describeTar, describeTree, makeTar, sha256, type NodeFacts, type Spec } from './helpers.js';

const STACK: Spec[][] = [
  [
    { path: 'a', type: 'directory' }, { path: 'a/x', data: 'x' }, { path: 'a/y', data: 'y', mode: 0o600, uid: 5 },
    { path: 'a/sub', type: 'directory' }, { path: 'a/sub/z', data: 'z' },
    { path: 'keep', data: 'v1' }, { path: 'gone', data: 'gone' },
    { path: 'opq', type: 'directory' }, { path: 'opq/lower', data: 'l' }, { path: 'opq/lowerdir/f', data: 'f' },
    { path: 'becomes-dir', data: 'file' }, { path: 'becomes-file', type: 'directory' }, { path: 'becomes-file/child', data: 'c' },
    // Hardlinks whose target a higher layer removes or replaces must keep this layer's data.
    { path: 'f', data: 'original f' }, { path: 'h1', type: 'hardlink', linkname: 'f' }, { path: 'h2', type: 'hardlink', linkname: 'f' },
    { path: 'g', data: 'old g' }, { path: 'gl', type: 'hardlink', linkname: 'g' },
    { path: 'sym', type: 'symlink', linkname: 'keep' },
    { path: 'caps', data: 'elf', xattrs: new Map([['user.cap', Buffer.from([0, 0xff])]]) },
  ],
  [
    { path: '.wh.gone', data: '' }, { path: 'a/.wh.x', data: '' },
    { path: 'opq', type: 'directory', mode: 0o700 }, { path: 'opq/.wh..wh..opq', data: '' }, { path: 'opq/new', data: 'n' },
    { path: 'becomes-dir', type: 'directory' }, { path: 'becomes-dir/inner', data: 'i' },
    { path: 'becomes-file', data: 'now a file' },
    { path: 'keep', data: 'v2', mode: 0o600 },
    { path: '.wh.f', data: '' }, { path: 'g', data: 'new g' },
    { path: 'only/implied/parents', data: 'p' },
  ],
  [
    { path: 'a/.wh.sub', data: '' }, { path: 'gone', data: 'back' },
    { path: 'opq/mine', data: 'm' }, { path: 'opq/.wh..wh..opq', data: '' },
    { path: 'sym', type: 'symlink', linkname: 'gone' },
    { path: 'lower-link', type: 'hardlink', linkname: 'keep' },
  ],
];

async function flatten(specs: Spec[][]): Promise<Buffer> {
  const tars = await Promise.all(specs.map((s) => makeTar(s)));
  const out = new PassThrough();
  const done = collect(out);
  await exportFlattened(tars.map((t) => async () => Readable.from([t])), out);
  return done;
}

/** Hardlink entries replaced by their targets' facts, so equal trees compare equal however links were chosen. */
function resolveLinks(facts: Map<string, NodeFacts>): Map<string, NodeFacts> {
  const out = new Map<string, NodeFacts>();
  for (const [path, f] of facts) {
    let target = f;
    for (let hops = 0; target.type === 'hardlink' && hops < 10; hops++) target = facts.get(target.link as string) as NodeFacts;
    out.set(path, target);
  }
  return out;
}

test('flattening without disk equals unpacking the stack then packing it', async () => {
  await withTempDir('export', async (dir) => {
    const flat = await flatten(STACK);
    const unpacked = join(dir, 'unpacked');
    await unpackLayers(await Promise.all(STACK.map(async (s) => Readable.from([await makeTar(s)]))), unpacked);
    const packedOut = new PassThrough();
    const packed = collect(packedOut);
    await packDirectory(unpacked, packedOut);
    const fromFlat = resolveLinks(await describeTar(flat));
    const fromDisk = resolveLinks(await describeTar(await packed));
    // Implied parents (only/, only/implied/) have no entry in the stack; the disk has them.
    for (const implied of ['only', 'only/implied']) {
      assert.equal(fromDisk.get(implied)?.type, 'directory');
      fromDisk.delete(implied);
    }
    assert.deepEqual([...fromFlat.keys()].sort(), [...fromDisk.keys()].sort());
    for (const [path, facts] of fromDisk) {
      const mine = fromFlat.get(path) as NodeFacts;
      assert.deepEqual({ ...mine, link: mine.type === 'symlink' ? mine.link : undefined }, { ...facts, link: facts.type === 'symlink' ? facts.link : undefined }, path);
    }
    assert.equal(fromFlat.has('f'), false);
    assert.equal(fromFlat.get('h1')?.sha256, sha256(Buffer.from('original f')), 'a whited-out target keeps its data under its link');
    assert.equal(fromFlat.get('gl')?.sha256, sha256(Buffer.from('old g')), 'a replaced target keeps the old data under its link');
    assert.equal(fromFlat.get('g')?.sha256, sha256(Buffer.from('new g')));
  });
});

test('the flattened tar unpacks to the same tree as the stack, hardlinks kept', async () => {
  await withTempDir('export-apply', async (dir) => {
    const viaStack = join(dir, 'stack');
    const viaFlat = join(dir, 'flat');
    await unpackLayers(await Promise.all(STACK.map(async (s) => Readable.from([await makeTar(s)]))), viaStack);
    await applyLayer(Readable.from([await flatten(STACK)]), viaFlat);
    assert.deepEqual(await describeTree(viaFlat), await describeTree(viaStack));
    const h1 = await stat(join(viaFlat, 'h1'));
    assert.equal(h1.ino, (await stat(join(viaFlat, 'h2'))).ino, 'links of a shadowed target stay linked');
    assert.equal(h1.nlink, 2);
    assert.equal((await stat(join(viaFlat, 'lower-link'))).ino, (await stat(join(viaFlat, 'keep'))).ino);
  });
});

test('whole-root opaque marker hides every lower layer', async () => {
  const flat = await describeTar(await flatten([[{ path: 'old', data: 'o' }], [{ path: '.wh..wh..opq', data: '' }, { path: 'new', data: 'n' }]]));
  assert.deepEqual([...flat.keys()], ['new']);
});
