import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, readdir, stat, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { requireTool, run, withTempDir } from '../../harness/tools.js';
import { ensureTestImages, TEST_IMAGE } from '../../harness/images.js';
import { makeImageLayout } from '../../harness/layouts.js';
import { isBasaltError } from '../../../src/oci/errors.js';
import { digestOf } from '../../../src/oci/digest.js';
import { parseManifest } from '../../../src/oci/manifest.js';
import { MediaType } from '../../../src/oci/media-types.js';
import { gcLayout, listLayoutRefs, ociLayoutTransport, parseLayoutReference, removeLayoutRef } from '../../../src/oci/transports/oci-layout.js';
import { buildImage, copyLocal, readAll } from './helpers.js';

const opts = {};

test('parseLayoutReference splits on the first colon, as containers/image does', () => {
  assert.deepEqual(parseLayoutReference('/a/b'), { dir: '/a/b', ref: undefined });
  assert.deepEqual(parseLayoutReference('/a/b:latest'), { dir: '/a/b', ref: 'latest' });
  assert.deepEqual(parseLayoutReference('/a/b:localhost/app:1'), { dir: '/a/b', ref: 'localhost/app:1' });
  assert.deepEqual(parseLayoutReference('dir:'), { dir: 'dir', ref: undefined });
  assert.throws(() => parseLayoutReference(':x'), (e) => isBasaltError(e, 'usage'));
  assert.throws(() => parseLayoutReference('/d:bad ref'), (e) => isBasaltError(e, 'usage'));
});

test('oci destination writes a layout that oci-image-tool and umoci accept, and reads back', async () => {
  requireTool('oci-image-tool');
  requireTool('umoci');
  await withTempDir('oci-write', async (tmp) => {
    const dir = join(tmp, 'layout');
    const img = await buildImage([{ 'etc/a': 'one\n' }, { 'etc/b': 'two\n' }]);
    await copyLocal(img.source, await ociLayoutTransport.openDestination(`${dir}:v1`, opts));
    run('oci-image-tool', ['validate', '--type', 'image', '--ref', 'name=v1', dir]);
    assert.match(run('umoci', ['ls', '--layout', dir]), /^v1$/m);
    const layout = JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8'));
    assert.equal(layout.imageLayoutVersion, '1.0.0');
    // No temp files or lock left behind.
    assert.deepEqual((await readdir(dir)).sort(), ['blobs', 'index.json', 'oci-layout']);
    assert.deepEqual((await readdir(join(dir, 'blobs/sha256'))).filter((n) => n.startsWith('.')), []);

    const src = await ociLayoutTransport.openSource(`${dir}:v1`, opts);
    const m = await src.getManifest();
    assert.equal(m.digest, img.manifest.digest);
    assert.equal(m.mediaType, MediaType.OciManifest);
    const layer = img.layers[1];
    assert.ok(layer);
    const whole = await readAll(await src.getBlob(layer));
    assert.equal(digestOf(whole), layer.digest);
    const tail = await readAll(await src.getBlob(layer, { offset: 10 }));
    assert.deepEqual(tail, whole.subarray(10));
    await assert.rejects(src.getBlob({ ...layer, digest: digestOf('nope') }), (e) => isBasaltError(e, 'not-found'));
    await src.close();
  });
});

test('unknown-digest blobs are hashed while written; the result is a valid layout', async () => {
  requireTool('oci-image-tool');
  await withTempDir('oci-spool', async (tmp) => {
    const dir = join(tmp, 'layout');
    const img = await buildImage([{ 'x': 'x\n' }]);
    await copyLocal(img.source, await ociLayoutTransport.openDestination(`${dir}:spooled`, opts), { hideDigests: true });
    run('oci-image-tool', ['validate', '--type', 'image', '--ref', 'name=spooled', dir]);
  });
});

test('refs: a second name is added, the same name is replaced, and selection errors list what exists', async () => {
  await withTempDir('oci-refs', async (tmp) => {
    const dir = join(tmp, 'layout');
    const a = await buildImage([{ a: 'a' }]);
    const b = await buildImage([{ b: 'b' }]);
    const c = await buildImage([{ c: 'c' }]);
    await copyLocal(a.source, await ociLayoutTransport.openDestination(`${dir}:a`, opts));
    await copyLocal(b.source, await ociLayoutTransport.openDestination(`${dir}:b`, opts));
    await copyLocal(c.source, await ociLayoutTransport.openDestination(`${dir}:a`, opts));
    const refs = await listLayoutRefs(dir);
    assert.deepEqual(refs.map((r) => [r.ref, r.descriptor.digest]), [['b', b.manifest.digest], ['a', c.manifest.digest]]);

    await assert.rejects(ociLayoutTransport.openSource(dir, opts), (e) => isBasaltError(e, 'usage') && /2 images/.test(e.message) && /a, b|b, a/.test(e.hint ?? ''));
    await assert.rejects(ociLayoutTransport.openSource(`${dir}:missing`, opts), (e) => isBasaltError(e, 'not-found') && /missing/.test(e.message) && /available: b, a/.test(e.hint ?? ''));

    // Unnamed writes: the same digest twice leaves one unnamed entry.
    await copyLocal(a.source, await ociLayoutTransport.openDestination(dir, opts));
    await copyLocal(a.source, await ociLayoutTransport.openDestination(dir, opts));
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
    assert.equal(index.manifests.length, 3);

    const removed = await removeLayoutRef(dir, 'b');
    assert.equal(removed.digest, b.manifest.digest);
    await assert.rejects(removeLayoutRef(dir, 'b'), (e) => isBasaltError(e, 'not-found'));
    await assert.rejects(removeLayoutRef(join(tmp, 'absent'), 'b'), (e) => isBasaltError(e, 'not-found') && /no such layout/.test(e.message));
    const gc = await gcLayout(dir);
    assert.ok(gc.removed.includes(b.manifest.digest));
    assert.ok(gc.removed.includes(b.config.digest));
    // What is still named is intact.
    const src = await ociLayoutTransport.openSource(`${dir}:a`, opts);
    assert.equal((await src.getManifest()).digest, c.manifest.digest);
    await readAll(await src.getBlob(c.layers[0]!));
    await src.close();
  });
});

test('a blob with the wrong digest or size leaves the layout as it was; a new layout is not created', async () => {
  await withTempDir('oci-bad', async (tmp) => {
    const dir = join(tmp, 'layout');
    const good = await buildImage([{ g: 'g' }]);
    await copyLocal(good.source, await ociLayoutTransport.openDestination(`${dir}:good`, opts));
    const before = await readFile(join(dir, 'index.json'));
    const blobsBefore = (await readdir(join(dir, 'blobs/sha256'))).sort();

    for (const [what, info] of [
      ['digest', { mediaType: MediaType.OciLayer, digest: digestOf('something else'), size: 5 }],
      ['size', { mediaType: MediaType.OciLayer, digest: digestOf('hello'), size: 4 }],
    ] as const) {
      const dest = await ociLayoutTransport.openDestination(`${dir}:bad`, opts);
      await assert.rejects(dest.putBlob(Readable.from([Buffer.from('hello')]), info), (e) => isBasaltError(e, 'integrity'), what);
      await dest.abort();
      assert.deepEqual(await readFile(join(dir, 'index.json')), before);
      assert.deepEqual((await readdir(join(dir, 'blobs/sha256'))).sort(), blobsBefore);
    }

    const fresh = join(tmp, 'new-layout');
    const dest = await ociLayoutTransport.openDestination(`${fresh}:x`, opts);
    await dest.putBlob(Readable.from([Buffer.from('fine')]), { mediaType: MediaType.OciLayer, digest: digestOf('fine'), size: 4 });
    await assert.rejects(dest.putBlob(Readable.from([Buffer.from('hello')]), { mediaType: MediaType.OciLayer, digest: digestOf('x'), size: 5 }));
    await dest.abort();
    assert.equal(existsSync(fresh), false);
  });
});

test('commit refuses an image whose blobs are missing (as after a concurrent gc)', async () => {
  await withTempDir('oci-missing', async (tmp) => {
    const dir = join(tmp, 'layout');
    const img = await buildImage([{ m: 'm' }]);
    const dest = await ociLayoutTransport.openDestination(`${dir}:m`, opts);
    await dest.putBlob(Readable.from([img.source === undefined ? Buffer.alloc(0) : await readAll(await img.source.getBlob(img.config))]), { mediaType: img.config.mediaType, digest: img.config.digest, size: img.config.size });
    await dest.putManifest(img.manifest, { top: true });
    await assert.rejects(dest.commit(), (e) => isBasaltError(e, 'integrity') && e.message.includes(img.layers[0]!.digest));
    await dest.abort();
    assert.equal(existsSync(join(dir, 'index.json')), false);
  });
});

test('a corrupt index.json is reported, and a writer does not replace it', async () => {
  await withTempDir('oci-corrupt', async (tmp) => {
    const dir = join(tmp, 'layout');
    await makeImageLayout(dir, 'x', [{ f: 'f' }]);
    await writeFile(join(dir, 'index.json'), '{"schemaVersion": 2, "manifests": [');
    await assert.rejects(ociLayoutTransport.openSource(`${dir}:x`, opts), (e) => isBasaltError(e, 'invalid') && e.message.includes('index.json'));
    const img = await buildImage([{ y: 'y' }]);
    await assert.rejects(copyLocal(img.source, await ociLayoutTransport.openDestination(`${dir}:y`, opts)), (e) => isBasaltError(e, 'invalid'));
    assert.equal(await readFile(join(dir, 'index.json'), 'utf8'), '{"schemaVersion": 2, "manifests": [');
    await assert.rejects(ociLayoutTransport.openSource(join(tmp, 'nothing'), opts), (e) => isBasaltError(e, 'not-found') && /not an OCI image layout/.test(e.message));
  });
});

test('a manifest whose stored bytes do not match its digest is refused', async () => {
  await withTempDir('oci-tamper', async (tmp) => {
    const dir = join(tmp, 'layout');
    const desc = await makeImageLayout(dir, 'x', [{ f: 'f' }]);
    const path = join(dir, 'blobs/sha256', desc.digest.slice(7));
    const bytes = await readFile(path);
    await writeFile(path, Buffer.concat([bytes, Buffer.from(' ')]));
    const src = await ociLayoutTransport.openSource(`${dir}:x`, opts);
    await assert.rejects(src.getManifest(), (e) => isBasaltError(e, 'integrity'));
    await src.close();
  });
});

test('reads layouts written by skopeo and by podman save --format oci-dir', async () => {
  requireTool('skopeo');
  await ensureTestImages();
  await withTempDir('oci-peers', async (tmp) => {
    const skopeoDir = join(tmp, 'skopeo');
    run('skopeo', ['copy', `containers-storage:${TEST_IMAGE}`, `oci:${skopeoDir}:tagged`]);
    const podmanDir = join(tmp, 'podman');
    run('podman', ['save', '--format', 'oci-dir', '-o', podmanDir, TEST_IMAGE]);
    for (const name of [`${skopeoDir}:tagged`, podmanDir]) {
      const src = await ociLayoutTransport.openSource(name, opts);
      const top = await src.getManifest();
      const parsed = parseManifest(top.bytes, top.mediaType, name);
      assert.equal(parsed.kind, 'image');
      if (parsed.kind !== 'image') continue;
      for (const d of [parsed.manifest.config, ...parsed.manifest.layers]) assert.equal(digestOf(await readAll(await src.getBlob(d))), d.digest);
      // Copy it to a fresh layout with our destination and have umoci read that.
      const out = join(tmp, `copy-${name === podmanDir ? 'p' : 's'}`);
      await copyLocal(await ociLayoutTransport.openSource(name, opts), await ociLayoutTransport.openDestination(`${out}:copy`, opts));
      assert.match(run('umoci', ['ls', '--layout', out]), /^copy$/m);
      await src.close();
    }
  });
});

test('gcLayout keeps everything reachable through an index and sweeps old temp files', async () => {
  await withTempDir('oci-gc', async (tmp) => {
    const dir = join(tmp, 'layout');
    const img = await buildImage([{ k: 'k' }]);
    await copyLocal(img.source, await ociLayoutTransport.openDestination(`${dir}:k`, opts));
    await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
    const stray = join(dir, 'blobs/sha256', digestOf('stray').slice(7));
    await writeFile(stray, 'stray');
    const result = await gcLayout(dir);
    assert.deepEqual(result.removed, [digestOf('stray')]);
    assert.equal(existsSync(stray), false);
    assert.ok((await stat(join(dir, 'blobs/sha256', img.layers[0]!.digest.slice(7)))).isFile());
  });
});
