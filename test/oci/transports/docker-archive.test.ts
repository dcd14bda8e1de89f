import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat, symlink, truncate, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { requireTool, run, withTempDir } from '../../harness/tools.js';
import { ensureTestImages, TEST_IMAGE, TEST_IMAGE_LAYERED } from '../../harness/images.js';
import { isBasaltError } from '../../../src/oci/errors.js';
import { digestOf } from '../../../src/oci/digest.js';
import { encodeJson, parseManifest } from '../../../src/oci/manifest.js';
import { MediaType } from '../../../src/oci/media-types.js';
import { DOCKER_LAYER_TAR, dockerArchiveTransport, parseDockerArchiveReference } from '../../../src/oci/transports/docker-archive.js';
import { ociLayoutTransport } from '../../../src/oci/transports/oci-layout.js';
import { buildImage, copyLocal, MemorySource, readAll, uniqueName, podmanImagesRemovedAfter } from './helpers.js';

const opts = {};
const podmanNames = podmanImagesRemovedAfter();

test('docker-archive references follow containers/image', () => {
  assert.deepEqual(parseDockerArchiveReference('/a.tar', false), { file: '/a.tar', name: undefined, index: undefined });
  assert.deepEqual(parseDockerArchiveReference('/a.tar:busybox', false), { file: '/a.tar', name: 'docker.io/library/busybox:latest', index: undefined });
  assert.deepEqual(parseDockerArchiveReference('/a.tar:localhost/x:2', true), { file: '/a.tar', name: 'localhost/x:2', index: undefined });
  assert.deepEqual(parseDockerArchiveReference('/a.tar:@1', false), { file: '/a.tar', name: undefined, index: 1 });
  assert.throws(() => parseDockerArchiveReference('/a.tar:@1', true), (e) => isBasaltError(e, 'usage'));
  assert.throws(() => parseDockerArchiveReference(`/a.tar:x@sha256:${'a'.repeat(64)}`, false), (e) => isBasaltError(e, 'usage'));
});

async function checkSource(name: string): Promise<{ layers: number; mediaTypes: string[] }> {
  const src = await dockerArchiveTransport.openSource(name, opts);
  try {
    const top = await src.getManifest();
    assert.equal(top.mediaType, MediaType.DockerManifest);
    const parsed = parseManifest(top.bytes, top.mediaType, name);
    assert.equal(parsed.kind, 'image');
    if (parsed.kind !== 'image') throw new Error('not an image');
    assert.equal(parsed.manifest.config.mediaType, MediaType.DockerConfig);
    for (const d of [parsed.manifest.config, ...parsed.manifest.layers]) {
      const bytes = await readAll(await src.getBlob(d));
      assert.equal(bytes.length, d.size);
      assert.equal(digestOf(bytes), d.digest);
    }
    return { layers: parsed.manifest.layers.length, mediaTypes: parsed.manifest.layers.map((l) => l.mediaType) };
  } finally {
    await src.close();
  }
}

test('docker-archive source: reads podman save archives (single, multi-image, gzip\'d)', async () => {
  requireTool('podman');
  await ensureTestImages();
  await withTempDir('da-read', async (tmp) => {
    const single = join(tmp, 'single.tar');
    run('podman', ['save', '-o', single, TEST_IMAGE]);
    const explicit = join(tmp, 'explicit.tar');
    run('podman', ['save', '--format', 'docker-archive', '-o', explicit, TEST_IMAGE_LAYERED]);
    const multi = join(tmp, 'multi.tar');
    run('podman', ['save', '-m', '-o', multi, TEST_IMAGE, TEST_IMAGE_LAYERED]);

    assert.deepEqual(await checkSource(single), { layers: 1, mediaTypes: [DOCKER_LAYER_TAR] });
    assert.equal((await checkSource(`${single}:${TEST_IMAGE}`)).layers, 1);
    assert.equal((await checkSource(explicit)).layers, 3);
    assert.equal((await checkSource(`${multi}:@1`)).layers, 3);
    assert.equal((await checkSource(`${multi}:${TEST_IMAGE}`)).layers, 1);
    await assert.rejects(dockerArchiveTransport.openSource(multi, opts), (e) => isBasaltError(e, 'usage') && /@0 \(localhost\/basalt-test\/busybox:1\)/.test(e.hint ?? ''));
    await assert.rejects(dockerArchiveTransport.openSource(`${multi}:@2`, opts), (e) => isBasaltError(e, 'not-found'));
    await assert.rejects(dockerArchiveTransport.openSource(`${multi}:other:1`, opts), (e) => isBasaltError(e, 'not-found'));

    // A whole gzip'd `docker save | gzip` archive, and a layer stored gzip-compressed inside.
    const gz = join(tmp, 'single.tar.gz');
    await writeFile(gz, gzipSync(await readFile(single)));
    assert.equal((await checkSource(gz)).layers, 1);

    // Copy out to an OCI layout: umoci reads the result.
    const out = join(tmp, 'layout');
    await copyLocal(await dockerArchiveTransport.openSource(explicit, opts), await ociLayoutTransport.openDestination(`${out}:from-docker`, opts));
    assert.match(run('umoci', ['ls', '--layout', out]), /^from-docker$/m);
  });
});

test('docker-archive source: gzip layers inside the archive are served as stored, with a gzip media type', async () => {
  await withTempDir('da-gzlayer', async (tmp) => {
    const img = await buildImage([{ 'etc/x': 'x\n' }], { compress: 'none' });
    const tar = (await readAll(await img.source.getBlob(img.layers[0]!)));
    const gz = gzipSync(tar);
    const root = join(tmp, 'root');
    await mkdir(root);
    await writeFile(join(root, 'layer.tar.gz'), gz);
    await writeFile(join(root, 'config.json'), await readAll(await img.source.getBlob(img.config)));
    await writeFile(join(root, 'manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: null, Layers: ['./layer.tar.gz'] }]));
    const file = join(tmp, 'a.tar');
    run('tar', ['-C', root, '-cf', file, '.']);
    const src = await dockerArchiveTransport.openSource(file, opts);
    const m = parseManifest((await src.getManifest()).bytes, MediaType.DockerManifest, 'x');
    assert.ok(m.kind === 'image');
    assert.deepEqual(m.manifest.layers, [{ mediaType: MediaType.DockerLayerGzip, digest: digestOf(gz), size: gz.length }]);
    await src.close();
  });
});

test('docker-archive destination: layers stored uncompressed, podman loads and runs it', async () => {
  requireTool('podman');
  await withTempDir('da-write', async (tmp) => {
    const file = join(tmp, 'image.tar');
    const name = `localhost/${uniqueName('basalt-da')}:1`;
    const img = await buildImage([{ 'etc/hello.txt': 'hello from a docker-archive\n' }, { 'etc/b': 'b\n' }], { busybox: true, cmd: ['/bin/cat', '/etc/hello.txt'] });
    await copyLocal(img.source, await dockerArchiveTransport.openDestination(`${file}:${name}`, opts));
    assert.deepEqual(await readdir(tmp), ['image.tar']);
    const manifestJson = JSON.parse(run('tar', ['-xOf', file, 'manifest.json']));
    assert.deepEqual(manifestJson, [{ Config: `${img.config.digest.slice(7)}.json`, RepoTags: [name], Layers: img.diffIds.map((d) => `${d.slice(7)}.tar`) }]);
    const extracted = join(tmp, 'x');
    await mkdir(extracted);
    run('tar', ['-xf', file, '-C', extracted]);
    for (const d of img.diffIds) assert.equal(digestOf(await readFile(join(extracted, `${d.slice(7)}.tar`))), d); // stored uncompressed
    const repositories = JSON.parse(run('tar', ['-xOf', file, 'repositories']));
    assert.ok(repositories[name.slice(0, name.lastIndexOf(':'))]);

    // Our own source reads it back: uncompressed layers whose digests are the diff_ids.
    const src = await dockerArchiveTransport.openSource(`${file}:${name}`, opts);
    const m = parseManifest((await src.getManifest()).bytes, MediaType.DockerManifest, file);
    assert.ok(m.kind === 'image');
    assert.deepEqual(m.manifest.layers.map((l) => l.digest), img.diffIds);
    for (const l of m.manifest.layers) assert.equal(digestOf(await readAll(await src.getBlob(l))), l.digest);
    await src.close();

    podmanNames.push(name);
    run('podman', ['load', '-i', file]);
    assert.equal(run('podman', ['run', '--rm', name]), 'hello from a docker-archive\n');
  });
});

test('docker-archive destination: re-compressed layers (digest unknown) are decompressed and checked against diff_ids', async () => {
  await withTempDir('da-spool', async (tmp) => {
    const file = join(tmp, 'image.tar');
    const img = await buildImage([{ a: 'a\n' }]);
    await copyLocal(img.source, await dockerArchiveTransport.openDestination(`${file}:x:1`, opts), { hideDigests: true });
    const manifestJson = JSON.parse(run('tar', ['-xOf', file, 'manifest.json']));
    assert.deepEqual(manifestJson[0].RepoTags, ['docker.io/library/x:1']);
    assert.deepEqual(manifestJson[0].Layers, [`${img.diffIds[0]!.slice(7)}.tar`]);
  });
});

test('docker-archive destination: a layer that does not match the config\'s diff_id leaves no archive', async () => {
  await withTempDir('da-diffid', async (tmp) => {
    const img = await buildImage([{ a: 'a\n' }]);
    // Same image, but the config claims a different diff_id.
    const blobs = new Map<string, Buffer>();
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digestOf('not the layer')] } }));
    const configDesc = { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.length };
    blobs.set(configDesc.digest, config);
    blobs.set(img.layers[0]!.digest, await readAll(await img.source.getBlob(img.layers[0]!)));
    const bytes = encodeJson({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: img.layers });
    const source = new MemorySource({ bytes, mediaType: MediaType.OciManifest, digest: digestOf(bytes) }, blobs);
    const file = join(tmp, 'bad.tar');
    await assert.rejects(copyLocal(source, await dockerArchiveTransport.openDestination(file, opts)), (e) => isBasaltError(e, 'integrity') && /diff_id/.test(e.message));
    assert.deepEqual(await readdir(tmp), []);
  });
});

test('docker-archive source: layers reached through symlinks (older docker save) resolve inside the archive only', async () => {
  await withTempDir('da-symlink', async (tmp) => {
    const img = await buildImage([{ 'etc/x': 'x\n' }], { compress: 'none' });
    const root = join(tmp, 'root');
    await mkdir(join(root, 'abc'), { recursive: true });
    await mkdir(join(root, 'evil'), { recursive: true });
    await writeFile(join(root, 'real.tar'), await readAll(await img.source.getBlob(img.layers[0]!)));
    await symlink('../real.tar', join(root, 'abc/layer.tar'));
    await symlink('../../../../../etc/passwd', join(root, 'evil/layer.tar'));
    await writeFile(join(root, 'config.json'), await readAll(await img.source.getBlob(img.config)));
    await writeFile(join(root, 'manifest.json'), JSON.stringify([
      { Config: 'config.json', RepoTags: ['good:1'], Layers: ['abc/layer.tar'] },
      { Config: 'config.json', RepoTags: ['evil:1'], Layers: ['evil/layer.tar'] },
    ]));
    const file = join(tmp, 'a.tar');
    run('tar', ['-C', root, '-cf', file, '.']);
    const good = await checkSource(`${file}:good:1`);
    assert.deepEqual(good, { layers: 1, mediaTypes: [DOCKER_LAYER_TAR] });
    await assert.rejects(dockerArchiveTransport.openSource(`${file}:evil:1`, opts), (e) => isBasaltError(e, 'not-found'));
  });
});

async function craftArchive(tmp: string, layers: string[]): Promise<string> {
  const root = join(tmp, `root-${Math.random().toString(36).slice(2)}`);
  await mkdir(root);
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map(() => digestOf('x')) } });
  await writeFile(join(root, 'c.json'), config);
  await writeFile(join(root, 'manifest.json'), JSON.stringify([{ Config: 'c.json', RepoTags: ['a:1'], Layers: layers }]));
  const file = `${root}.tar`;
  run('tar', ['-C', root, '-cf', file, '.']);
  return file;
}

test('docker-archive source: manifest.json paths outside the archive are refused as unsafe', async () => {
  await withTempDir('da-unsafe', async (tmp) => {
    for (const bad of ['../../etc/passwd', '/etc/passwd', 'ok/../../x']) {
      const file = await craftArchive(tmp, [bad]);
      await assert.rejects(dockerArchiveTransport.openSource(file, opts), (e) => isBasaltError(e, 'unsafe') && e.message.includes(bad), bad);
    }
    const missing = await craftArchive(tmp, ['nothere.tar']);
    await assert.rejects(dockerArchiveTransport.openSource(missing, opts), (e) => isBasaltError(e, 'not-found') && e.message.includes('nothere.tar'));
  });
});

test('docker-archive source: a truncated archive is an integrity error', async () => {
  requireTool('podman');
  await ensureTestImages();
  await withTempDir('da-trunc', async (tmp) => {
    const file = join(tmp, 'a.tar');
    run('podman', ['save', '-o', file, TEST_IMAGE]);
    await truncate(file, Math.floor((await stat(file)).size / 3));
    await assert.rejects(dockerArchiveTransport.openSource(file, opts), (e) => isBasaltError(e, 'integrity'));
  });
});
