import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { digestOf, parseDigest, VerifyingStream } from '../../src/oci/digest.js';
import { parseManifest, MAX_MANIFEST_BYTES } from '../../src/oci/manifest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseReference, formatReference } from '../../src/oci/reference.js';
import { parsePlatform, selectPlatform } from '../../src/oci/platform.js';
import { isBasaltError } from '../../src/oci/errors.js';

const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });

test('digests: sha256 and sha512 parse; malformed ones are refused naming the input', () => {
  const d = digestOf('hello');
  assert.equal(d, 'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  assert.equal(parseDigest(digestOf('x', 'sha512')).algorithm, 'sha512');
  assert.throws(() => parseDigest('sha256:abc', 'layer 3'), (e) => isBasaltError(e, 'invalid') && e.message.includes('layer 3'));
  assert.throws(() => parseDigest('md5:d41d8cd98f00b204e9800998ecf8427e'), (e) => isBasaltError(e, 'unsupported'));
  assert.throws(() => parseDigest(`sha256:${'A'.repeat(64)}`), (e) => isBasaltError(e, 'invalid'));
});

test('VerifyingStream passes good data and fails wrong digest, truncation and oversize', async () => {
  const data = Buffer.from('layer bytes');
  const good = digestOf(data);
  await pipeline(Readable.from([data]), new VerifyingStream(good, data.length, 'blob A'), sink());
  await assert.rejects(pipeline(Readable.from([Buffer.from('layer bytez')]), new VerifyingStream(good, data.length, 'blob A'), sink()), (e) => isBasaltError(e, 'integrity') && /digest mismatch/.test(e.message) && e.message.includes('blob A'));
  await assert.rejects(pipeline(Readable.from([data.subarray(0, 5)]), new VerifyingStream(good, data.length, 'blob B'), sink()), (e) => isBasaltError(e, 'integrity') && /truncated/.test(e.message));
  await assert.rejects(pipeline(Readable.from([data, data]), new VerifyingStream(good, data.length, 'blob C'), sink()), (e) => isBasaltError(e, 'integrity') && /more data/.test(e.message));
});

const layer = { mediaType: MediaType.OciLayerGzip, digest: digestOf('l'), size: 1 };
const config = { mediaType: MediaType.OciConfig, digest: digestOf('c'), size: 1 };

test('manifests: OCI, Docker, index parse; mediaType inferred when absent', () => {
  const oci = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer] }));
  const p = parseManifest(oci, undefined, 'x');
  assert.equal(p.kind, 'image');
  assert.equal(p.digest, digestOf(oci));
  const bare = Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: [] }));
  assert.equal(parseManifest(bare, 'application/json', 'x').mediaType, MediaType.OciManifest);
  const list = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.DockerManifestList, manifests: [{ mediaType: MediaType.DockerManifest, digest: digestOf('m'), size: 3, platform: { os: 'linux', architecture: 'amd64' } }] }));
  assert.equal(parseManifest(list, MediaType.DockerManifestList, 'x').kind, 'index');
});

test('manifests: malformed, oversized, unknown and schema 1 are refused with the reason', () => {
  const bad = (bytes: string | Buffer, type: string | undefined, kind: string, re: RegExp): void =>
    assert.throws(() => parseManifest(Buffer.from(bytes), type, 'docker://r/x:1'), (e) => isBasaltError(e) && e.kind === kind && re.test(e.message) && e.message.includes('docker://r/x:1'));
  bad('{not json', undefined, 'invalid', /not valid JSON/);
  bad('[]', undefined, 'invalid', /not a JSON object/);
  bad(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example+json', config, layers: [] }), undefined, 'unsupported', /unknown manifest media type/);
  bad(JSON.stringify({ schemaVersion: 1, name: 'x' }), undefined, 'unsupported', /schema 1/);
  bad(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { ...config, digest: 'sha256:zz' }, layers: [] }), undefined, 'invalid', /digest/);
  bad(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [{ ...layer, size: -1 }] }), undefined, 'invalid', /size/);
  bad(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [] }), MediaType.DockerManifest, 'invalid', /served as/);
  const huge = Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20);
  bad(huge, undefined, 'invalid', /over the 4194304-byte limit/);
});

test('references: docker normalisation, ports, digests, bad names', () => {
  assert.deepEqual(parseReference('debian'), { registry: 'docker.io', repository: 'library/debian' });
  assert.deepEqual(parseReference('localhost:5000/a/b:1'), { registry: 'localhost:5000', repository: 'a/b', tag: '1' });
  const d = digestOf('m');
  assert.equal(formatReference(parseReference(`127.0.0.1:5000/x@${d}`)), `127.0.0.1:5000/x@${d}`);
  assert.throws(() => parseReference('Registry/UPPER'), (e) => isBasaltError(e, 'usage'));
  assert.throws(() => parseReference('host:5000/x:bad tag'), (e) => isBasaltError(e, 'usage'));
});

test('platforms: parse and select, listing what exists when nothing matches', () => {
  const mk = (os: string, architecture: string, variant?: string) => ({ mediaType: MediaType.OciManifest, digest: digestOf(os + architecture + (variant ?? '')), size: 1, platform: { os, architecture, ...(variant ? { variant } : {}) } });
  const entries = [mk('linux', 'amd64'), mk('linux', 'arm64', 'v8'), mk('linux', 'arm', 'v7')];
  assert.equal(selectPlatform(entries, parsePlatform('linux/arm64'), 'i').digest, entries[1]?.digest);
  assert.equal(selectPlatform(entries, parsePlatform('linux/arm/v7'), 'i').digest, entries[2]?.digest);
  assert.throws(() => selectPlatform(entries, parsePlatform('linux/s390x'), 'idx'), (e) => isBasaltError(e, 'not-found') && /linux\/amd64, linux\/arm64\/v8/.test(e.hint ?? ''));
  assert.throws(() => parsePlatform('linux'), (e) => isBasaltError(e, 'usage'));
});

test('VerifyingStream verifies blobs in many chunks and reports every byte', async () => {
  const data = Buffer.alloc(11 * 1024 * 1024 + 17, 0x5a);
  const good = digestOf(data);
  const parts = [data.subarray(0, 1000), data.subarray(1000, 5_000_000), data.subarray(5_000_000)];
  let reported = 0;
  await pipeline(Readable.from(parts), new VerifyingStream(good, data.length, 'big blob', (n) => (reported += n)), sink());
  assert.equal(reported, data.length);
  const bad = Buffer.from(data);
  bad.writeUInt8(0x00, bad.length - 1);
  await assert.rejects(pipeline(Readable.from([bad]), new VerifyingStream(good, data.length, 'big blob'), sink()), (e) => isBasaltError(e, 'integrity') && /digest mismatch/.test(e.message));
  await assert.rejects(pipeline(Readable.from([data.subarray(0, data.length - 1)]), new VerifyingStream(good, data.length, 'big blob'), sink()), (e) => isBasaltError(e, 'integrity') && /truncated/.test(e.message));
});
