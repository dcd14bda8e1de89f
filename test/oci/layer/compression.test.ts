import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { autoDecompress, compressStream, decompressStream, detectCompression, type Compression } from '../../../src/oci/layer/compression.js';
import { requireTool, run, withTempDir } from '../../harness/tools.js';
import { collect } from './helpers.js';

// Compressible but not trivial: text with random words.
const SAMPLE = Buffer.concat(Array.from({ length: 2000 }, () => Buffer.from(`line ${randomBytes(6).toString('hex')} of the sample layer\n`)));

async function compress(kind: Compression, data: Buffer, level?: number): Promise<Buffer> {
  const c = compressStream(kind, level);
  const done = collect(c as unknown as Readable);
  c.end(data);
  return done;
}

for (const kind of ['gzip', 'zstd', 'none'] as const) {
  test(`${kind}: round trip, detection and autoDecompress`, async () => {
    const packed = await compress(kind, SAMPLE);
    assert.equal(detectCompression(packed.subarray(0, 4)), kind);
    if (kind !== 'none') assert.ok(packed.length < SAMPLE.length / 2, 'it compresses');
    const d = decompressStream(kind);
    const out = collect(d as unknown as Readable);
    d.end(packed);
    assert.deepEqual(await out, SAMPLE);
    // Split into tiny chunks so sniffing has to gather the magic across chunks.
    const chunks = Array.from({ length: Math.ceil(packed.length / 3) }, (_, i) => packed.subarray(i * 3, i * 3 + 3));
    assert.deepEqual(await collect(await autoDecompress(Readable.from(chunks))), SAMPLE);
  });
}

test('autoDecompress passes through tiny and empty inputs', async () => {
  assert.deepEqual(await collect(await autoDecompress(Readable.from([Buffer.from('ab')]))), Buffer.from('ab'));
  assert.deepEqual(await collect(await autoDecompress(Readable.from([]))), Buffer.alloc(0));
});

test('corrupt compressed data surfaces as an error on the returned stream', async () => {
  const packed = await compress('zstd', SAMPLE);
  packed.fill(0x41, 20, 200);
  await assert.rejects(collect(await autoDecompress(Readable.from([packed]))));
  const gz = await compress('gzip', SAMPLE);
  await assert.rejects(collect(await autoDecompress(Readable.from([gz.subarray(0, gz.length - 30)]))));
});

test('zstd and gzip output is read by the zstd and gzip programs, and theirs by us', async () => {
  requireTool('zstd');
  requireTool('gzip');
  await withTempDir('compression', async (dir) => {
    for (const [kind, program, ext] of [['zstd', 'zstd', 'zst'], ['gzip', 'gzip', 'gz']] as const) {
      const file = join(dir, `ours.${ext}`);
      await pipeline(Readable.from([SAMPLE]), compressStream(kind), createWriteStream(file));
      run(program, ['-d', '-f', '-k', file]);
      assert.deepEqual(await readFile(join(dir, 'ours')), SAMPLE, `${program} -d reads our ${kind}`);
      await writeFile(join(dir, 'theirs'), SAMPLE);
      run(program, ['-f', '-k', join(dir, 'theirs')]);
      const theirs = await readFile(join(dir, `theirs.${ext}`));
      assert.deepEqual(await collect(await autoDecompress(Readable.from([theirs]))), SAMPLE, `we read ${program}'s output`);
    }
  });
});

test('multi-member gzip (as pigz writes) decompresses whole', async () => {
  const a = await compress('gzip', Buffer.from('first '));
  const b = await compress('gzip', Buffer.from('second'));
  assert.equal((await collect(await autoDecompress(Readable.from([Buffer.concat([a, b])])))).toString(), 'first second');
});
