import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { VerifyingStream } from '../../../src/oci/digest.js';
import { isBasaltError } from '../../../src/oci/errors.js';
import { dockerTransport } from '../../../src/oci/registry/transport.js';
import { startFaultProxy, type FaultProxy } from '../../harness/fault-proxy.js';
import { startRegistry, type TestRegistry } from '../../harness/registry.js';
import { makeImage, pushImage, readAll, testOptions, type TestImage } from './helpers.js';

describe('fault recovery through a misbehaving proxy', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let img: TestImage;
  const BIG = 3 * 1024 * 1024;
  before(async () => {
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.host);
    img = makeImage([1000, BIG]);
    await pushImage(await dockerTransport.openDestination(`${reg.host}/faults/img:v1`, testOptions()), img);
  });
  beforeEach(() => {
    proxy.rules.length = 0;
    proxy.log.length = 0;
  });
  after(async () => {
    await proxy.stop();
    await reg.stop();
  });

  const ref = (): string => `${proxy.host}/faults/img:v1`;
  const layer = (): TestImage['layerDescs'][number] => img.layerDescs[1]!;

  async function verifiedRead(stream: NodeJS.ReadableStream): Promise<number> {
    let n = 0;
    await pipeline(stream, new VerifyingStream(layer().digest, layer().size, 'test layer'), new Writable({ write: (c: Buffer, _e, cb) => ((n += c.length), cb()) }));
    return n;
  }

  it('retries 500 and 503 answers', async () => {
    proxy.rules.push({ path: /\/manifests\//, action: { kind: 'status', status: 503 }, times: 2 }, { path: /\/blobs\//, action: { kind: 'status', status: 500 } });
    const opts = testOptions();
    const src = await dockerTransport.openSource(ref(), opts);
    assert.equal((await src.getManifest()).digest, img.manifest.digest);
    assert.equal(await verifiedRead(await src.getBlob(layer())), BIG);
    assert.equal(proxy.log.filter((e) => e.status === 503).length, 2);
    assert.ok(opts.messages.some((m) => /HTTP 503; retrying/.test(m)), opts.messages.join('\n'));
  });

  it('waits as long as Retry-After asks on 429', async () => {
    proxy.rules.push({ path: /\/manifests\//, action: { kind: 'status', status: 429, headers: { 'retry-after': '1' } } });
    const opts = testOptions({ retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 5000, totalBudgetMs: 10_000 } });
    const started = Date.now();
    const src = await dockerTransport.openSource(ref(), opts);
    assert.ok(Date.now() - started >= 950, 'waited for Retry-After');
    assert.equal((await src.getManifest()).digest, img.manifest.digest);
    assert.ok(opts.messages.some((m) => /HTTP 429; retrying in 1000 ms/.test(m)), opts.messages.join('\n'));
  });

  it('gives up after the retry budget with a network error naming the status', async () => {
    proxy.rules.push({ path: /\/manifests\//, action: { kind: 'status', status: 503 }, times: 100 });
    await assert.rejects(dockerTransport.openSource(ref(), testOptions()), (e: unknown) => {
      assert.ok(isBasaltError(e, 'network'), String(e));
      assert.match((e as Error).message, /HTTP 503 after 5 attempts/);
      assert.match((e as Error).message, /faults\/img/);
      return true;
    });
  });

  it('retries a connection reset', async () => {
    proxy.rules.push({ path: /\/manifests\//, action: { kind: 'reset' } }, { path: /\/blobs\//, action: { kind: 'reset' } });
    const src = await dockerTransport.openSource(ref(), testOptions());
    assert.equal(await verifiedRead(await src.getBlob(layer())), BIG);
    assert.equal(proxy.log.filter((e) => e.fault === 'reset').length, 2);
  });

  it('resumes a truncated blob body with a Range request', async () => {
    proxy.rules.push({ path: /\/blobs\/sha256/, action: { kind: 'truncate', afterBytes: 1_000_000 } });
    const opts = testOptions();
    const src = await dockerTransport.openSource(ref(), opts);
    assert.equal(await verifiedRead(await src.getBlob(layer())), BIG);
    const blobGets = proxy.log.filter((e) => e.url.includes('/blobs/'));
    assert.equal(blobGets[0]?.fault, 'truncate');
    assert.equal(blobGets[1]?.range, 'bytes=1000000-', JSON.stringify(blobGets));
    assert.equal(blobGets[1]?.status, 206);
    assert.ok(opts.messages.some((m) => /resuming with a Range request/.test(m)), opts.messages.join('\n'));
  });

  it('resumes twice, from an offset, and across a reset of the resume', async () => {
    proxy.rules.push(
      { path: /\/blobs\/sha256/, ranged: true, action: { kind: 'truncate', afterBytes: 500_000 } },
      { path: /\/blobs\/sha256/, ranged: true, action: { kind: 'reset' } },
    );
    const src = await dockerTransport.openSource(ref(), testOptions());
    const tail = await readAll(await src.getBlob(layer(), { offset: 100 }));
    assert.deepEqual(tail, img.layers[1]!.subarray(100));
    assert.deepEqual(
      proxy.log.filter((e) => e.url.includes('/blobs/')).map((e) => e.range),
      ['bytes=100-', 'bytes=500100-', 'bytes=500100-'],
    );
  });

  it('turns 403 into denied and 401 into auth, with the registry message', async () => {
    proxy.rules.push({ path: /\/manifests\//, action: { kind: 'status', status: 403, body: JSON.stringify({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] }) } });
    await assert.rejects(dockerTransport.openSource(ref(), testOptions()), (e: unknown) => {
      assert.ok(isBasaltError(e, 'denied'), String(e));
      assert.match((e as Error).message, /access to .*faults\/img denied.*DENIED: requested access to the resource is denied/);
      return true;
    });
    proxy.rules.push({ path: /\/manifests\//, action: { kind: 'status', status: 401 }, times: 2 });
    await assert.rejects(dockerTransport.openSource(ref(), testOptions({ creds: 'x:y' })), (e: unknown) => isBasaltError(e, 'auth'));
  });

  it('recovers a chunked upload whose POST met a 503', async () => {
    proxy.rules.push({ method: 'POST', path: /\/blobs\/uploads\//, action: { kind: 'status', status: 503 } });
    const opts = testOptions({ chunkSize: 256 * 1024, monolithicMaxBytes: 1024 });
    const dest = await dockerTransport.openDestination(`${proxy.host}/faults/up:v1`, opts);
    const up = makeImage([700_000]);
    await pushImage(dest, up);
    const src = await dockerTransport.openSource(`${reg.host}/faults/up:v1`, testOptions());
    assert.deepEqual(await readAll(await src.getBlob(up.layerDescs[0]!)), up.layers[0]);
  });
});

describe('chunked upload through a connection reset', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  before(async () => {
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.host);
  });
  after(async () => {
    await proxy.stop();
    await reg.stop();
  });

  it('asks the registry how much it holds and resends the chunk from there', async () => {
    // The third PATCH (bytes from 256 KiB on) is cut before it reaches the registry.
    proxy.rules.push({ method: 'PATCH', skip: 2, action: { kind: 'reset' }, times: 1 });
    const opts = testOptions({ chunkSize: 128 * 1024, monolithicMaxBytes: 1024 });
    const dest = await dockerTransport.openDestination(`${proxy.host}/faults/patch:v1`, opts);
    const up = makeImage([600_000]);
    await pushImage(dest, up);
    const patches = proxy.log.filter((e) => e.method === 'PATCH').length;
    assert.ok(patches >= 6, `expected the reset PATCH to be resent, saw ${patches}`);
    assert.ok(proxy.log.some((e) => e.method === 'GET' && e.url.includes('/blobs/uploads/')), 'upload status was asked');
    assert.ok(opts.messages.some((m) => /holds 262144 bytes, resending from there/.test(m)), opts.messages.join('\n'));
    const src = await dockerTransport.openSource(`${reg.host}/faults/patch:v1`, testOptions());
    assert.deepEqual(await readAll(await src.getBlob(up.layerDescs[0]!)), up.layers[0]);
  });
});
