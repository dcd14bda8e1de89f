import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { requireTool, run, withTempDir } from '../../harness/tools.js';
import { ensureTestImages, TEST_IMAGE_LAYERED } from '../../harness/images.js';
import { isBasaltError } from '../../../src/oci/errors.js';
import { digestOf } from '../../../src/oci/digest.js';
import { parseManifest } from '../../../src/oci/manifest.js';
import { containersStorageTransport, normalisePodmanName } from '../../../src/oci/transports/containers-storage.js';
import { ociLayoutTransport } from '../../../src/oci/transports/oci-layout.js';
import { buildImage, copyLocal, readAll, uniqueName, podmanImagesRemovedAfter } from './helpers.js';

const opts = {};
const podmanNames = podmanImagesRemovedAfter();

test('containers-storage names are normalised like podman\'s', () => {
  assert.equal(normalisePodmanName('app'), 'localhost/app:latest');
  assert.equal(normalisePodmanName('team/app:2'), 'localhost/team/app:2');
  assert.equal(normalisePodmanName('quay.io/a/b'), 'quay.io/a/b:latest');
});

test('containers-storage source: reads a podman image; a missing one is not-found', async () => {
  requireTool('podman');
  await ensureTestImages();
  const src = await containersStorageTransport.openSource(TEST_IMAGE_LAYERED, opts);
  try {
    const top = await src.getManifest();
    const parsed = parseManifest(top.bytes, top.mediaType, src.name);
    assert.ok(parsed.kind === 'image');
    assert.equal(parsed.manifest.layers.length, 3);
    for (const d of [parsed.manifest.config, ...parsed.manifest.layers]) assert.equal(digestOf(await readAll(await src.getBlob(d))), d.digest);
    // podman's image ID is the config digest.
    const id = run('podman', ['image', 'inspect', '--format', '{{.Id}}', TEST_IMAGE_LAYERED]).trim();
    assert.equal(parsed.manifest.config.digest, `sha256:${id}`);
  } finally {
    await src.close();
  }
  await assert.rejects(containersStorageTransport.openSource(`localhost/${uniqueName('absent')}:1`, opts), (e) => isBasaltError(e, 'not-found') && /podman images/.test(e.hint ?? ''));
  await assert.rejects(containersStorageTransport.openSource('[overlay@/x]img', opts), (e) => isBasaltError(e, 'unsupported'));
});

test('containers-storage destination: the image is loaded, named like podman would, and runs', async () => {
  requireTool('podman');
  const short = `${uniqueName('basalt-cs')}:1`;
  const full = `localhost/${short}`;
  podmanNames.push(full);
  const img = await buildImage([{ 'etc/hello.txt': 'hello from containers-storage\n' }], { busybox: true, cmd: ['/bin/cat', '/etc/hello.txt'] });
  await copyLocal(img.source, await containersStorageTransport.openDestination(short, opts));
  assert.equal(run('podman', ['run', '--rm', full]), 'hello from containers-storage\n');
  assert.equal(run('podman', ['image', 'inspect', '--format', '{{.Id}}', full]).trim(), img.config.digest.slice(7));
});

test('containers-storage round trip: podman → oci layout → podman under a new name', async () => {
  requireTool('podman');
  requireTool('umoci');
  await ensureTestImages();
  await withTempDir('cs-rt', async (tmp) => {
    const layout = join(tmp, 'layout');
    await copyLocal(await containersStorageTransport.openSource(TEST_IMAGE_LAYERED, opts), await ociLayoutTransport.openDestination(`${layout}:rt`, opts));
    assert.match(run('umoci', ['ls', '--layout', layout]), /^rt$/m);
    const name = `localhost/${uniqueName('basalt-cs-rt')}:1`;
    podmanNames.push(name);
    await copyLocal(await ociLayoutTransport.openSource(`${layout}:rt`, opts), await containersStorageTransport.openDestination(name, opts));
    assert.equal(run('podman', ['run', '--rm', name]), 'layered\n');
  });
});

test('containers-storage without podman is a tool error', async () => {
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    await assert.rejects(containersStorageTransport.openSource('anything', opts), (e) => isBasaltError(e, 'tool') && /podman/.test(e.message));
  } finally {
    process.env.PATH = saved;
  }
});
