import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTool, run, withTempDir } from '../../harness/tools.js';
import { isBasaltError } from '../../../src/oci/errors.js';
import { defaultStoreRoot, listStoreImages, normaliseStoreName, removeStoreImage, storeTransport } from '../../../src/oci/transports/store.js';
import { parseImageName } from '../../../src/oci/transports/index.js';
import { buildImage, copyLocal, readAll } from './helpers.js';

test('the store root: $BASALT_STORE, then root\'s /var/lib, then XDG_DATA_HOME or ~/.local/share', () => {
  assert.equal(defaultStoreRoot({ BASALT_STORE: '/s' }, 0), '/s');
  assert.equal(defaultStoreRoot({}, 0), '/var/lib/basalt/store');
  assert.equal(defaultStoreRoot({ XDG_DATA_HOME: '/x' }, 1000), '/x/basalt/store');
  assert.equal(defaultStoreRoot({ HOME: '/home/u' }, 1000), '/home/u/.local/share/basalt/store');
});

test('store names are normalised like podman\'s local names', () => {
  assert.equal(normaliseStoreName('app'), 'localhost/app:latest');
  assert.equal(normaliseStoreName('app:1'), 'localhost/app:1');
  assert.equal(normaliseStoreName('team/app'), 'localhost/team/app:latest');
  assert.equal(normaliseStoreName('localhost/app:2'), 'localhost/app:2');
  assert.equal(normaliseStoreName('quay.io/x/y'), 'quay.io/x/y:latest');
  assert.equal(normaliseStoreName('localhost:5000/y:3'), 'localhost:5000/y:3');
  assert.equal(normaliseStoreName('docker.io/library/debian:12'), 'docker.io/library/debian:12');
  assert.throws(() => normaliseStoreName(`app@sha256:${'a'.repeat(64)}`), (e) => isBasaltError(e, 'usage'));
  assert.throws(() => normaliseStoreName('Bad Name'), (e) => isBasaltError(e, 'usage'));
});

test('store: write, list, read by full, short and digest names, remove; skopeo reads the same layout', async () => {
  requireTool('skopeo');
  await withTempDir('store', async (root) => {
    const options = { storeRoot: root };
    const app = await buildImage([{ 'etc/app': 'app\n' }]);
    const deb = await buildImage([{ 'etc/deb': 'deb\n' }]);
    await copyLocal(app.source, await storeTransport.openDestination('app', options));
    await copyLocal(deb.source, await storeTransport.openDestination('docker.io/library/debian:12', options));
    const images = await listStoreImages(root);
    assert.deepEqual(images.map((i) => [i.name, i.digest]), [
      ['localhost/app:latest', app.manifest.digest],
      ['docker.io/library/debian:12', deb.manifest.digest],
    ]);
    for (const [name, digest] of [
      ['app', app.manifest.digest],
      ['localhost/app:latest', app.manifest.digest],
      ['debian:12', deb.manifest.digest], // short name, found under docker.io/library
      [deb.manifest.digest, deb.manifest.digest],
      [`localhost/app@${app.manifest.digest}`, app.manifest.digest],
    ] as [string, string][]) {
      const src = await storeTransport.openSource(name, options);
      assert.equal((await src.getManifest()).digest, digest, name);
      await src.close();
    }
    await assert.rejects(storeTransport.openSource('nothere', options), (e) => isBasaltError(e, 'not-found') && /localhost\/app:latest/.test(e.hint ?? ''));
    await assert.rejects(storeTransport.openSource(`localhost/app@${deb.manifest.digest}`, options), (e) => isBasaltError(e, 'not-found'));

    // The store is a plain OCI layout: skopeo finds the image by its full name.
    const inspected = JSON.parse(run('skopeo', ['inspect', '--raw', `oci:${root}:localhost/app:latest`]));
    assert.equal(inspected.layers[0].digest, app.layers[0]!.digest);

    // Bare names go to the store.
    assert.equal(parseImageName('app:1').transport, storeTransport);

    await removeStoreImage(root, 'app');
    assert.deepEqual((await listStoreImages(root)).map((i) => i.name), ['docker.io/library/debian:12']);
    await assert.rejects(removeStoreImage(root, 'app'), (e) => isBasaltError(e, 'not-found'));
  });
});

test('store: a short name that matches several registries is ambiguous', async () => {
  await withTempDir('store-amb', async (root) => {
    const img = await buildImage([{ a: 'a' }]);
    await copyLocal(img.source, await storeTransport.openDestination('quay.io/a/tool:1', { storeRoot: root }));
    await copyLocal((await buildImage([{ a: 'a' }])).source, await storeTransport.openDestination('ghcr.io/b/tool:1', { storeRoot: root }));
    await assert.rejects(storeTransport.openSource('tool:1', { storeRoot: root }), (e) => isBasaltError(e, 'usage') && /ambiguous/.test(e.message));
    const src = await storeTransport.openSource('quay.io/a/tool:1', { storeRoot: root });
    await readAll(await src.getBlob(img.layers[0]!));
    await src.close();
  });
});

test('store: an empty or missing store gives a clear not-found', async () => {
  await withTempDir('store-empty', async (root) => {
    assert.deepEqual(await listStoreImages(join(root, 'none')), []);
    await assert.rejects(storeTransport.openSource('app', { storeRoot: join(root, 'none') }), (e) => isBasaltError(e, 'not-found') && /empty/.test(e.message));
  });
});

function runChild(args: string[]): Promise<void> {
  const script = fileURLToPath(new URL('./store-writer.child.js', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer exited ${code}: ${stderr}`))));
  });
}

test('store: concurrent writers in separate processes keep each other\'s names', async () => {
  await withTempDir('store-conc', async (root) => {
    await Promise.all([runChild([root, 'alpha', '8']), runChild([root, 'beta', '8']), runChild([root, 'gamma', '8'])]);
    const names = (await listStoreImages(root)).map((i) => i.name).sort();
    const expected = ['alpha', 'beta', 'gamma'].flatMap((p) => Array.from({ length: 8 }, (_, i) => `localhost/${p}-${i}:latest`)).sort();
    assert.deepEqual(names, expected);
  });
});

test('store: a stale lock left by a dead process is broken', async () => {
  await withTempDir('store-stale', async (root) => {
    // pid 2^22+1 is above Linux's pid_max default, so no process has it.
    await writeFile(join(root, 'index.json.lock'), `${2 ** 22 + 1}\n${(await import('node:os')).hostname()}\nxx\n`);
    const img = await buildImage([{ s: 's' }]);
    await copyLocal(img.source, await storeTransport.openDestination('stale', { storeRoot: root }));
    assert.deepEqual((await listStoreImages(root)).map((i) => i.name), ['localhost/stale:latest']);
  });
});
