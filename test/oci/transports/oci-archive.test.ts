import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat, truncate, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { requireTool, run, withTempDir } from '../../harness/tools.js';
import { ensureTestImages, TEST_IMAGE } from '../../harness/images.js';
import { isBasaltError } from '../../../src/oci/errors.js';
import { digestOf } from '../../../src/oci/digest.js';
import { parseManifest } from '../../../src/oci/manifest.js';
import { MediaType } from '../../../src/oci/media-types.js';
import { ociArchiveTransport } from '../../../src/oci/transports/oci-archive.js';
import { ociLayoutTransport } from '../../../src/oci/transports/oci-layout.js';
import { buildImage, copyLocal, readAll, uniqueName, podmanImagesRemovedAfter } from './helpers.js';

const opts = {};
const podmanNames = podmanImagesRemovedAfter();

test('oci-archive destination: podman loads the archive and runs the image', async () => {
  requireTool('podman');
  requireTool('skopeo');
  await withTempDir('ociar-write', async (tmp) => {
    const file = join(tmp, 'image.tar');
    const name = `localhost/${uniqueName('basalt-ociar')}:1`;
    const img = await buildImage([{ 'etc/hello.txt': 'hello from an oci-archive\n' }, { 'etc/second': 'second\n' }], { busybox: true, cmd: ['/bin/cat', '/etc/hello.txt'] });
    await copyLocal(img.source, await ociArchiveTransport.openDestination(`${file}:${name}`, opts));
    assert.deepEqual((await readdir(tmp)).sort(), ['image.tar']); // no temp or spool files left
    const listing = run('tar', ['-tf', file]).split('\n').filter(Boolean);
    assert.ok(listing.includes('index.json') && listing.includes('oci-layout') && listing.includes(`blobs/sha256/${img.layers[0]!.digest.slice(7)}`), listing.join(' '));
    const inspected = JSON.parse(run('skopeo', ['inspect', '--raw', `oci-archive:${file}:${name}`]));
    assert.equal(inspected.config.digest, img.config.digest);

    podmanNames.push(name);
    run('podman', ['load', '-i', file]);
    assert.equal(run('podman', ['run', '--rm', name]), 'hello from an oci-archive\n');
  });
});

test('oci-archive: layers offered without digest are spooled; the archive extracts to a valid layout', async () => {
  requireTool('oci-image-tool');
  await withTempDir('ociar-spool', async (tmp) => {
    const file = join(tmp, 'image.tar');
    const img = await buildImage([{ a: 'a\n' }, { b: 'b\n' }]);
    await copyLocal(img.source, await ociArchiveTransport.openDestination(`${file}:spooled`, opts), { hideDigests: true });
    const dir = join(tmp, 'x');
    await mkdir(dir);
    run('tar', ['-xf', file, '-C', dir]);
    run('oci-image-tool', ['validate', '--type', 'image', '--ref', 'name=spooled', dir]);
    assert.deepEqual((await readdir(tmp)).sort(), ['image.tar', 'x']);
  });
});

test('oci-archive source: reads skopeo\'s and podman\'s archives by random access, plain and gzip-compressed', async () => {
  requireTool('skopeo');
  requireTool('podman');
  await ensureTestImages();
  await withTempDir('ociar-read', async (tmp) => {
    const file = join(tmp, 'skopeo.tar');
    run('skopeo', ['copy', `containers-storage:${TEST_IMAGE}`, `oci-archive:${file}:tagged`]);
    const gz = join(tmp, 'skopeo.tar.gz');
    await writeFile(gz, gzipSync(await readFile(file)));
    const podmanFile = join(tmp, 'podman.tar');
    run('podman', ['save', '--format', 'oci-archive', '-o', podmanFile, TEST_IMAGE]);
    for (const name of [`${file}:tagged`, file, `${gz}:tagged`, podmanFile]) {
      const src = await ociArchiveTransport.openSource(name, opts);
      const top = await src.getManifest();
      const parsed = parseManifest(top.bytes, top.mediaType, name);
      assert.equal(parsed.kind, 'image');
      if (parsed.kind !== 'image') continue;
      for (const d of [parsed.manifest.config, ...parsed.manifest.layers]) assert.equal(digestOf(await readAll(await src.getBlob(d))), d.digest);
      const layer = parsed.manifest.layers[0]!;
      const whole = await readAll(await src.getBlob(layer));
      assert.deepEqual(await readAll(await src.getBlob(layer, { offset: 1000 })), whole.subarray(1000));
      await src.close();
    }
    // Copying out of it gives an image umoci can read.
    const out = join(tmp, 'layout');
    await copyLocal(await ociArchiveTransport.openSource(`${file}:tagged`, opts), await ociLayoutTransport.openDestination(`${out}:copied`, opts));
    assert.match(run('umoci', ['ls', '--layout', out]), /^copied$/m);
    await assert.rejects(ociArchiveTransport.openSource(`${file}:nope`, opts), (e) => isBasaltError(e, 'not-found') && /available: tagged/.test(e.hint ?? ''));
    // No temp dir stays behind after reading the gzip'd archive (it is removed on close).
  });
});

test('oci-archive source: a truncated archive is an integrity error', async () => {
  requireTool('skopeo');
  await ensureTestImages();
  await withTempDir('ociar-trunc', async (tmp) => {
    const file = join(tmp, 'a.tar');
    run('skopeo', ['copy', `containers-storage:${TEST_IMAGE}`, `oci-archive:${file}`]);
    const { size } = await stat(file);
    await truncate(file, Math.floor(size / 2));
    await assert.rejects(ociArchiveTransport.openSource(file, opts), (e) => isBasaltError(e, 'integrity'));
    const gz = join(tmp, 'a.tar.gz');
    const full = gzipSync(await readFile(file));
    await writeFile(gz, full.subarray(0, full.length - 100));
    await assert.rejects(ociArchiveTransport.openSource(gz, opts), (e) => isBasaltError(e, 'integrity'));
  });
});

test('oci-archive destination: a bad blob leaves no archive, and an existing archive is kept', async () => {
  await withTempDir('ociar-bad', async (tmp) => {
    const file = join(tmp, 'out.tar');
    const dest = await ociArchiveTransport.openDestination(`${file}:x`, opts);
    await dest.putBlob(Readable.from([Buffer.from('fine')]), { mediaType: MediaType.OciLayer, digest: digestOf('fine'), size: 4 });
    await assert.rejects(dest.putBlob(Readable.from([Buffer.from('hello')]), { mediaType: MediaType.OciLayer, digest: digestOf('other'), size: 5 }), (e) => isBasaltError(e, 'integrity'));
    // The tar is broken now: further writes are refused.
    await assert.rejects(dest.putBlob(Readable.from([Buffer.from('more')]), { mediaType: MediaType.OciLayer, digest: digestOf('more'), size: 4 }));
    await dest.abort();
    assert.deepEqual(await readdir(tmp), []);

    await writeFile(file, 'previous content');
    const spooled = await ociArchiveTransport.openDestination(`${file}:x`, opts);
    await assert.rejects(spooled.putBlob(Readable.from([Buffer.from('hello')]), { mediaType: MediaType.OciLayer, digest: digestOf('other') }), (e) => isBasaltError(e, 'integrity'));
    await spooled.abort();
    assert.deepEqual(await readdir(tmp), ['out.tar']);
    assert.equal(await readFile(file, 'utf8'), 'previous content');
    assert.equal(existsSync(file), true);
  });
});
