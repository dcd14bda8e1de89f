import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { copyImage } from '../../src/oci/copy.js';
import { openDestination, openSource } from '../../src/oci/transports/index.js';
import { readImage } from '../../src/oci/image.js';
import { MediaType } from '../../src/oci/media-types.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { makeImageLayout, makeIndexLayout } from '../harness/layouts.js';
import { tempDir } from '../harness/tools.js';

async function copy(src: string, dst: string, options: Parameters<typeof copyImage>[2] = {}) {
  const source = await openSource(src);
  try {
    return await copyImage(source, await openDestination(dst), options);
  } finally {
    await source.close();
  }
}

async function manifestOf(name: string): Promise<{ mediaType: string; layers?: { mediaType: string; digest: string }[]; manifests?: unknown[] }> {
  const s = await openSource(name);
  try {
    return JSON.parse((await s.getManifest()).bytes.toString()) as never;
  } finally {
    await s.close();
  }
}

test('copy oci → oci preserves the manifest digest when nothing changes', async () => {
  const dir = await tempDir('copy');
  const desc = await makeImageLayout(join(dir, 'a'), 'v1', [{ 'etc/a': 'a\n' }, { 'etc/b': 'b\n' }]);
  const result = await copy(`oci:${dir}/a:v1`, `oci:${dir}/b:v1`);
  assert.equal(result.digest, desc.digest);
  assert.equal(result.blobsWritten, 3);
  // A second copy finds every blob there already.
  const again = await copy(`oci:${dir}/a:v1`, `oci:${dir}/b:v2`);
  assert.equal(again.blobsWritten, 0);
  assert.equal(again.blobsSkipped, 2);
});

test('copy --dest-compress zstd re-compresses and keeps diff_ids; back to gzip round-trips content', async () => {
  const dir = await tempDir('copy-zstd');
  await makeImageLayout(join(dir, 'a'), 'v1', [{ 'etc/a': 'a'.repeat(10000) }]);
  await copy(`oci:${dir}/a:v1`, `oci:${dir}/z:v1`, { destCompress: 'zstd' });
  const m = await manifestOf(`oci:${dir}/z:v1`);
  assert.equal(m.layers?.[0]?.mediaType, MediaType.OciLayerZstd);
  const src = await openSource(`oci:${dir}/z:v1`);
  const img = await readImage(src);
  await src.close();
  const orig = await openSource(`oci:${dir}/a:v1`);
  const origImg = await readImage(orig);
  await orig.close();
  assert.deepEqual(img.config.rootfs.diff_ids, origImg.config.rootfs.diff_ids);
  await copy(`oci:${dir}/z:v1`, `oci:${dir}/g:v1`, { destCompress: 'gzip' });
  assert.equal((await manifestOf(`oci:${dir}/g:v1`)).layers?.[0]?.mediaType, MediaType.OciLayerGzip);
});

test('copy --format v2s2 converts manifest and layer media types', async () => {
  const dir = await tempDir('copy-v2s2');
  await makeImageLayout(join(dir, 'a'), 'v1', [{ 'x': 'x' }]);
  await copy(`oci:${dir}/a:v1`, `oci:${dir}/d:v1`, { format: 'v2s2' });
  const m = await manifestOf(`oci:${dir}/d:v1`);
  assert.equal(m.mediaType, MediaType.DockerManifest);
  assert.equal(m.layers?.[0]?.mediaType, MediaType.DockerLayerGzip);
  await assert.rejects(copy(`oci:${dir}/a:v1`, `oci:${dir}/e:v1`, { format: 'v2s2', destCompress: 'zstd' }), (e) => isBasaltError(e, 'usage'));
});

test('an index: one platform by default or --platform, every one with --all', async () => {
  const dir = await tempDir('copy-index');
  const idx = await makeIndexLayout(join(dir, 'a'), 'multi', [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }]);
  const one = await copy(`oci:${dir}/a:multi`, `oci:${dir}/one:x`, { platform: { os: 'linux', architecture: 'arm64' } });
  assert.equal((await manifestOf(`oci:${dir}/one:x`)).mediaType, MediaType.OciManifest);
  assert.notEqual(one.digest, idx.digest);
  const all = await copy(`oci:${dir}/a:multi`, `oci:${dir}/all:x`, { all: true });
  assert.equal(all.digest, idx.digest, 'index digest preserved');
  assert.equal((await manifestOf(`oci:${dir}/all:x`)).manifests?.length, 2);
  await assert.rejects(copy(`oci:${dir}/a:multi`, `oci:${dir}/none:x`, { platform: { os: 'linux', architecture: 's390x' } }), (e) => isBasaltError(e, 'not-found') && /linux\/arm64/.test(e.hint ?? ''));
});

test('a corrupted layer fails the copy naming the blob, and the destination shows nothing', async () => {
  const dir = await tempDir('copy-corrupt');
  await makeImageLayout(join(dir, 'a'), 'v1', [{ 'etc/a': 'a\n' }]);
  const m = await manifestOf(`oci:${dir}/a:v1`);
  const layer = m.layers?.[0]?.digest as string;
  const path = join(dir, 'a/blobs/sha256', layer.slice(7));
  const bytes = await readFile(path);
  const at = bytes.length - 10;
  bytes.writeUInt8(bytes.readUInt8(at) ^ 0xff, at);
  await writeFile(path, bytes);
  await assert.rejects(copy(`oci:${dir}/a:v1`, `oci:${dir}/b:v1`), (e) => isBasaltError(e, 'integrity') && e.message.includes(layer));
  const exists = await stat(join(dir, 'b/index.json')).then(() => true, () => false);
  if (exists) {
    const index = JSON.parse(await readFile(join(dir, 'b/index.json'), 'utf8')) as { manifests: unknown[] };
    assert.equal(index.manifests.length, 0, 'no ref points at a half-written image');
  }
  const blobs = await readdir(join(dir, 'b/blobs/sha256')).catch(() => [] as string[]);
  assert.ok(!blobs.includes(layer.slice(7)), 'the bad blob was not stored');
  // Truncation is caught the same way.
  await writeFile(path, bytes.subarray(0, 20));
  await assert.rejects(copy(`oci:${dir}/a:v1`, `oci:${dir}/c:v1`), (e) => isBasaltError(e, 'integrity'));
});

test('to a registry: streamed and chunked uploads land the same image; a corrupt layer leaves no tag', async () => {
  const { startRegistry } = await import('../harness/registry.js');
  const registry = await startRegistry({ flavour: 'open' });
  try {
    const dir = await tempDir('copy-registry');
    const big = 'x'.repeat(12 * 1024 * 1024) + Math.random().toString(); // over the one-request limit
    const desc = await makeImageLayout(join(dir, 'a'), 'v1', [{ 'big': big }, { 'small': 's' }]);
    const streamed = await copyImage(await openSource(`oci:${dir}/a:v1`), await openDestination(`docker://${registry.host}/t/streamed:1`, { tlsVerify: false }));
    assert.equal(streamed.digest, desc.digest);
    const chunked = await copyImage(await openSource(`oci:${dir}/a:v1`), await openDestination(`docker://${registry.host}/t/chunked:1`, { tlsVerify: false, chunkSize: 1024 * 1024 }));
    assert.equal(chunked.digest, desc.digest);
    const back = await copyImage(await openSource(`docker://${registry.host}/t/streamed:1`, { tlsVerify: false }), await openDestination(`oci:${dir}/back:v1`));
    assert.equal(back.digest, desc.digest);

    const m = await manifestOf(`oci:${dir}/a:v1`);
    const bigLayer = m.layers?.[0]?.digest as string;
    const path = join(dir, 'a/blobs/sha256', bigLayer.slice(7));
    const bytes = await readFile(path);
    bytes.writeUInt8(bytes.readUInt8(1000) ^ 0xff, 1000);
    await writeFile(path, bytes);
    for (const [repo, opts] of [['bad-streamed', {}], ['bad-chunked', { chunkSize: 1024 * 1024 }]] as const) {
      await assert.rejects(
        copyImage(await openSource(`oci:${dir}/a:v1`), await openDestination(`docker://${registry.host}/t/${repo}:1`, { tlsVerify: false, ...opts })),
        (e) => isBasaltError(e, 'integrity') && e.message.includes(bigLayer),
      );
      await assert.rejects(openSource(`docker://${registry.host}/t/${repo}:1`, { tlsVerify: false }).then((s) => s.getManifest()), (e) => isBasaltError(e, 'not-found'));
    }
  } finally {
    await registry.stop();
  }
});
