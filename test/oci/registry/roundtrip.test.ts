import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { digestOf } from '../../../src/oci/digest.js';
import { isBasaltError } from '../../../src/oci/errors.js';
import { MAX_MANIFEST_BYTES, manifestBlob, parseManifest } from '../../../src/oci/manifest.js';
import { MediaType } from '../../../src/oci/media-types.js';
import { dockerTransport, RegistryClient } from '../../../src/oci/registry/transport.js';
import { startRegistry, type TestRegistry } from '../../harness/registry.js';
import { makeImage, pushImage, readAll, streamOf, testOptions } from './helpers.js';

describe('registry round trips (open registry)', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry({ flavour: 'open' });
  });
  after(async () => {
    await reg.stop();
  });

  it('pushes an image and reads back manifest and blobs', async () => {
    const img = makeImage([1000, 5000]);
    const opts = testOptions();
    const dest = await dockerTransport.openDestination(`${reg.host}/rt/one:v1`, opts);
    await pushImage(dest, img);
    const src = await dockerTransport.openSource(`${reg.host}/rt/one:v1`, opts);
    const top = await src.getManifest();
    assert.equal(top.digest, img.manifest.digest);
    assert.equal(top.mediaType, MediaType.OciManifest);
    assert.deepEqual(top.bytes, img.manifest.bytes);
    const parsed = parseManifest(top.bytes, top.mediaType, src.name);
    assert.equal(parsed.kind, 'image');
    const byDigest = await src.getManifest(img.manifest.digest);
    assert.deepEqual(byDigest.bytes, img.manifest.bytes);
    for (const [i, d] of img.layerDescs.entries()) assert.deepEqual(await readAll(await src.getBlob(d)), img.layers[i]);
    const tail = await readAll(await src.getBlob(img.layerDescs[1]!, { offset: 1234 }));
    assert.deepEqual(tail, img.layers[1]!.subarray(1234));
    assert.deepEqual(src.location, { registry: reg.host, repository: 'rt/one' });
  });

  it('uploads a large blob in Content-Range chunks and an unknown-size blob', async () => {
    const opts = testOptions({ chunkSize: 256 * 1024, monolithicMaxBytes: 64 * 1024 });
    const dest = await dockerTransport.openDestination(`${reg.host}/rt/chunked:v1`, opts);
    const big = randomBytes(1024 * 1024 + 17);
    const desc = await dest.putBlob(streamOf(big, 100_000), { mediaType: MediaType.OciLayerGzip, digest: digestOf(big), size: big.length });
    assert.equal(desc.digest, digestOf(big));
    const patches = reg.logs().split('\n').filter((l) => l.includes('"PATCH /v2/rt/chunked/blobs/uploads/'));
    assert.ok(patches.length >= 5, `expected several PATCH requests, saw ${patches.length}`);
    const unknown = randomBytes(300_000);
    const desc2 = await dest.putBlob(streamOf(unknown), { mediaType: MediaType.OciLayerGzip });
    assert.equal(desc2.digest, digestOf(unknown));
    assert.equal(desc2.size, unknown.length);
    assert.equal(await dest.hasBlob({ mediaType: MediaType.OciLayerGzip, digest: desc2.digest, size: desc2.size }), true);
    assert.equal(await dest.hasBlob({ mediaType: MediaType.OciLayerGzip, digest: digestOf('nothing'), size: 7 }), false);
  });

  it('mounts a blob across repositories', async () => {
    const img = makeImage([2000]);
    const opts = testOptions();
    const a = await dockerTransport.openDestination(`${reg.host}/mount/a:v1`, opts);
    await pushImage(a, img);
    const b = await dockerTransport.openDestination(`${reg.host}/mount/b:v1`, opts);
    const layer = img.layerDescs[0]!;
    assert.equal(await b.hasBlob(layer), false, 'not in b before the mount');
    assert.equal(await b.hasBlob(layer, { registry: reg.host, repository: 'mount/a' }), true);
    assert.ok(opts.messages.some((m) => m.includes('mounted blob')), opts.messages.join('\n'));
    assert.match(reg.logs(), /POST \/v2\/mount\/b\/blobs\/uploads\/\?from=mount%2Fa&mount=sha256[^"]*" 201|POST \/v2\/mount\/b\/blobs\/uploads\/\?mount=sha256[^"]*from=mount%2Fa[^"]*" 201/);
    assert.equal(await b.hasBlob(layer), true, 'visible in b after the mount');
  });

  it('refuses a blob whose digest is wrong and leaves nothing visible', async () => {
    const opts = testOptions({ chunkSize: 64 * 1024, monolithicMaxBytes: 16 * 1024 });
    const dest = await dockerTransport.openDestination(`${reg.host}/rt/bad:v1`, opts);
    for (const size of [1000, 200_000]) {
      const data = randomBytes(size);
      const claimed = digestOf(randomBytes(size));
      await assert.rejects(dest.putBlob(streamOf(data), { mediaType: MediaType.OciLayerGzip, digest: claimed, size }), (e: unknown) => {
        assert.ok(isBasaltError(e, 'integrity'), String(e));
        assert.match((e as Error).message, new RegExp(claimed.slice(0, 20)));
        return true;
      });
      assert.equal(await dest.hasBlob({ mediaType: MediaType.OciLayerGzip, digest: claimed, size }), false);
      assert.equal(await dest.hasBlob({ mediaType: MediaType.OciLayerGzip, digest: digestOf(data), size }), false);
    }
  });

  it('pushes an index with children by digest, lists tags, heads and deletes', async () => {
    const opts = testOptions();
    const dest = await dockerTransport.openDestination(`${reg.host}/rt/multi:v2`, opts);
    const a = makeImage([100]);
    const b = makeImage([200]);
    for (const img of [a, b]) {
      await dest.putBlob(streamOf(img.config), { mediaType: img.configDesc.mediaType, digest: img.configDesc.digest, size: img.configDesc.size });
      await dest.putBlob(streamOf(img.layers[0]!), { mediaType: MediaType.OciLayerGzip, digest: img.layerDescs[0]!.digest, size: img.layerDescs[0]!.size });
      await dest.putManifest(img.manifest, { top: false });
    }
    const index = manifestBlob({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [a, b].map((img, i) => ({ mediaType: MediaType.OciManifest, digest: img.manifest.digest, size: img.manifest.bytes.length, platform: { architecture: i ? 'arm64' : 'amd64', os: 'linux' } })),
    });
    await dest.putManifest(index, { top: true });
    const src = await dockerTransport.openSource(`${reg.host}/rt/multi:v2`, opts);
    assert.equal((await src.getManifest()).mediaType, MediaType.OciIndex);
    assert.deepEqual((await src.getManifest(a.manifest.digest)).bytes, a.manifest.bytes);

    const client = new RegistryClient(reg.host, opts);
    for (let i = 0; i < 5; i++) await dest.putManifest(index, { top: true }).then(async () => {
      const d = await dockerTransport.openDestination(`${reg.host}/rt/multi:t${i}`, opts);
      await d.putManifest(index, { top: true });
    });
    const tags = await client.listTags('rt/multi');
    assert.deepEqual([...tags].sort(), ['t0', 't1', 't2', 't3', 't4', 'v2']);
    const head = await client.headManifest({ registry: reg.host, repository: 'rt/multi', tag: 'v2' });
    assert.deepEqual(head, { digest: index.digest, mediaType: MediaType.OciIndex, size: index.bytes.length });
    const deleted = await client.deleteManifest({ registry: reg.host, repository: 'rt/multi', tag: 'v2' });
    assert.equal(deleted, index.digest);
    await assert.rejects(dockerTransport.openSource(`${reg.host}/rt/multi:v2`, opts), (e: unknown) => isBasaltError(e, 'not-found'));
  });

  it('follows Link pagination of the tag list', async () => {
    const opts = testOptions();
    const img = makeImage([10]);
    const dest = await dockerTransport.openDestination(`${reg.host}/rt/paged:a`, opts);
    await pushImage(dest, img);
    const names = Array.from({ length: 7 }, (_, i) => `tag${i}`);
    for (const t of names) await (await dockerTransport.openDestination(`${reg.host}/rt/paged:${t}`, opts)).putManifest(img.manifest, { top: true });
    // Ask for pages of 3 to force Link headers.
    const client = new RegistryClient(reg.host, opts);
    const tags = await client.listTags('rt/paged', 3);
    assert.deepEqual([...tags].sort(), ['a', ...names].sort());
  });

  it('refuses an oversized manifest without reading it all', async () => {
    const opts = testOptions();
    const big = Buffer.alloc(MAX_MANIFEST_BYTES + 10, 0x20);
    const src = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: makeImage([1]).configDesc, layers: [] });
    big.write(src, 0);
    // The registry itself refuses manifests over its limit, so the big document is served by a stub.
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      if (req.url === '/v2/') {
        res.writeHead(200).end('{}');
        return;
      }
      res.writeHead(200, { 'content-type': MediaType.OciManifest, 'content-length': String(big.length) });
      res.end(big);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      await assert.rejects(dockerTransport.openSource(`127.0.0.1:${port}/huge/manifest:v1`, opts), (e: unknown) => {
        assert.ok(isBasaltError(e, 'invalid'), String(e));
        assert.match((e as Error).message, /over the 4194304-byte manifest limit/);
        return true;
      });
      // And when the size is not declared, the limit is enforced while reading.
      server.removeAllListeners('request');
      server.on('request', (req, res) => {
        if (req.url === '/v2/') {
          res.writeHead(200).end('{}');
          return;
        }
        res.writeHead(200, { 'content-type': MediaType.OciManifest });
        res.end(big);
      });
      await assert.rejects(dockerTransport.openSource(`127.0.0.1:${port}/huge/manifest:v2`, opts), /manifest limit/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('names the missing manifest, blob and repository', async () => {
    const opts = testOptions();
    await assert.rejects(dockerTransport.openSource(`${reg.host}/no/such:thing`, opts), (e: unknown) => {
      assert.ok(isBasaltError(e, 'not-found'), String(e));
      assert.match((e as Error).message, new RegExp(`${reg.host}/no/such`));
      return true;
    });
    const img = makeImage([10]);
    await pushImage(await dockerTransport.openDestination(`${reg.host}/rt/nf:v1`, opts), img);
    await assert.rejects(dockerTransport.openSource(`${reg.host}/rt/nf:v2`, opts), (e: unknown) => isBasaltError(e, 'not-found') && /manifest v2/.test((e as Error).message));
    const src = await dockerTransport.openSource(`${reg.host}/rt/nf:v1`, opts);
    const missing = digestOf('missing');
    await assert.rejects(src.getBlob({ mediaType: MediaType.OciLayerGzip, digest: missing, size: 7 }), (e: unknown) => isBasaltError(e, 'not-found') && (e as Error).message.includes(missing));
  });

  it('fails clearly when nothing listens, and when https meets plain http', async () => {
    const opts = testOptions();
    await assert.rejects(dockerTransport.openSource('127.0.0.1:1/x/y:z', opts), (e: unknown) => {
      assert.ok(isBasaltError(e, 'network'), String(e));
      assert.match((e as Error).message, /127\.0\.0\.1:1 \(connection refused\)/);
      return true;
    });
    await assert.rejects(dockerTransport.openSource(`${reg.host}/x/y:z`, { ...opts, tlsVerify: true }), (e: unknown) => {
      assert.ok(isBasaltError(e, 'network'), String(e));
      assert.match((e as Error).message, /plain-http/);
      assert.match((e as { hint?: string }).hint ?? '', /--tls-verify=false/);
      return true;
    });
  });
});
