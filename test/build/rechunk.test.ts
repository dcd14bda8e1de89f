import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { packDirectory } from '../../src/oci/layer/pack.js';
import { readTar } from '../../src/oci/layer/tar.js';
import { openUncompressed } from '../../src/oci/image.js';
import { Scratch } from '../../src/oci/scratch.js';
import { planChunks, rechunkTree, type Chunk } from '../../src/build/rechunk.js';
import { tempDir } from '../harness/tools.js';

const EPOCH = 1_700_000_000;

/** A synthetic Debian-like tree: 8 packages with dpkg file lists, merged /usr, unowned files. */
async function makeTree(root: string, version: (pkg: string) => string): Promise<void> {
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await mkdir(join(root, 'var/lib/dpkg/info'), { recursive: true });
  await mkdir(join(root, 'usr/lib/modules/6.1/kernel'), { recursive: true });
  await symlink('usr/bin', join(root, 'bin'));
  const sizes: Record<string, number> = { kernel: 50_000, big: 20_000, libc: 8_000, a: 100, b: 200, c: 300, d: 400, e: 500 };
  for (const [pkg, size] of Object.entries(sizes)) {
    const files = [`/usr/share/${pkg}/data`, `/bin/${pkg}`];
    await mkdir(join(root, `usr/share/${pkg}`), { recursive: true });
    await writeFile(join(root, `usr/share/${pkg}/data`), `${version(pkg)}\n`.padEnd(size, '.'));
    await writeFile(join(root, `usr/bin/${pkg}`), `#!/bin/sh\necho ${pkg} ${version(pkg)}\n`);
    const list = ['/.', '/usr', '/usr/share', `/usr/share/${pkg}`, ...files].join('\n') + '\n';
    await writeFile(join(root, `var/lib/dpkg/info/${pkg}${pkg === 'libc' ? ':amd64' : ''}.list`), list);
  }
  await writeFile(join(root, 'usr/lib/modules/6.1/initramfs.img'), 'unowned initramfs');
}

function packed(root: string): () => Promise<Readable> {
  return async () => {
    const tar = new PassThrough();
    packDirectory(root, tar, { sourceDateEpoch: EPOCH }).catch((e: unknown) => tar.destroy(e as Error));
    return tar;
  };
}

async function pathsOf(chunk: Chunk): Promise<string[]> {
  const out: string[] = [];
  for await (const e of readTar(await openUncompressed(chunk.layer), chunk.description)) {
    out.push(e.path);
    e.body.resume();
  }
  return out;
}

test('planChunks: largest packages alone, the rest by name hash, unowned last', () => {
  const plan = planChunks(new Map([['kernel', 100], ['big', 50], ['x', 1], ['y', 2], ['z', 3]]), 5);
  // 5 layers: 4 for packages (2 alone + 2 buckets), 1 for unowned files
  assert.equal(plan.descriptions.length, 5);
  assert.equal(plan.layerOf.get('kernel'), 0);
  assert.equal(plan.layerOf.get('big'), 1);
  for (const p of ['x', 'y', 'z']) assert.ok([2, 3].includes(plan.layerOf.get(p) as number));
  assert.equal(plan.layerOf.get(''), 4);
  assert.throws(() => planChunks(new Map(), 1), /at least 2 layers/);
});

test('rechunk: every file lands in exactly one layer, each layer stands alone, and one package\'s update changes one layer', async () => {
  const v1 = await tempDir('rechunk-v1');
  const v2 = await tempDir('rechunk-v2');
  const scratch = await Scratch.create();
  try {
    await makeTree(v1, () => '1');
    await makeTree(v2, (pkg) => (pkg === 'c' ? '2' : '1'));
    const one = await rechunkTree(packed(v1), scratch, { layers: 6, compression: 'gzip' });
    const again = await rechunkTree(packed(v1), scratch, { layers: 6, compression: 'gzip' });
    const two = await rechunkTree(packed(v2), scratch, { layers: 6, compression: 'gzip' });
    assert.deepEqual(one.map((c) => c.layer.descriptor.digest), again.map((c) => c.layer.descriptor.digest), 'same tree, same layers');
    assert.equal(one.length, 6);
    assert.deepEqual(one.slice(0, 3).map((c) => c.description), ['package kernel', 'package big', 'package libc']);
    assert.equal(one[5]?.description, 'files no package owns');

    const all: string[] = [];
    for (const c of one) {
      const paths = await pathsOf(c);
      // parents precede children within each layer
      for (const p of paths) {
        const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
        if (parent) assert.ok(paths.indexOf(parent) > -1 && paths.indexOf(parent) < paths.indexOf(p), `${p} before its parent in ${c.description}`);
      }
      all.push(...paths);
    }
    const files = all.filter((p) => p.startsWith('usr/share/') && p.endsWith('/data'));
    assert.equal(files.length, 8);
    assert.equal(new Set(files).size, 8, 'no file in two layers');
    assert.ok((await pathsOf(one[0] as Chunk)).includes('usr/bin/kernel'), 'merged-/usr: /bin/kernel of the list is usr/bin/kernel');
    assert.ok((await pathsOf(one[5] as Chunk)).includes('usr/lib/modules/6.1/initramfs.img'));

    const changed = one.map((c, i) => c.layer.descriptor.digest !== two[i]?.layer.descriptor.digest);
    assert.equal(changed.filter(Boolean).length, 1, `only the layer holding package c changes: ${JSON.stringify(changed)}`);
    const which = one[changed.indexOf(true)] as Chunk;
    assert.ok(which.packages.includes('c'));
  } finally {
    await scratch.dispose();
    await rm(v1, { recursive: true, force: true });
    await rm(v2, { recursive: true, force: true });
  }
});
