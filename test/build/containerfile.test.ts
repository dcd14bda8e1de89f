import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildContainerfile } from '../../src/build/containerfile.js';
import { baseImagesOf } from '../../src/build/containerfile-from.js';
import { listStoreImages } from '../../src/oci/transports/store.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { ensureTestImages, TEST_IMAGE, TEST_IMAGE_LAYERED } from '../harness/images.js';
import { requireTool, run, tempDir } from '../harness/tools.js';

test('baseImagesOf: ARG defaults, --build-arg, stages and scratch', () => {
  const text = [
    'ARG BASE=localhost/basalt/debian:bookworm',
    'FROM ${BASE} AS builder',
    'RUN echo \\',
    '  continued',
    '# FROM commented:out',
    'FROM --platform=linux/amd64 docker.io/library/busybox:1',
    'COPY --from=builder /x /x',
    'FROM builder',
    'FROM scratch',
    'ARG TAG',
    'FROM registry.lan/app:$TAG',
  ].join('\n');
  assert.deepEqual(baseImagesOf(text), ['localhost/basalt/debian:bookworm', 'docker.io/library/busybox:1', 'registry.lan/app:']);
  assert.deepEqual(baseImagesOf(text, { BASE: 'other:1', TAG: '2' }), ['other:1', 'docker.io/library/busybox:1', 'registry.lan/app:2']);
});

test('basalt build: podman builds, the result is stored; lint refuses a non-bootable image; a failing Containerfile is named', async () => {
  requireTool('podman');
  await ensureTestImages();
  const dir = await tempDir('containerfile');
  const store = join(dir, 'store');
  const tag = `localhost/basalt-test/build-small:${process.pid}`;
  try {
    const ctx = join(dir, 'ctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'greeting.txt'), 'hello\n');
    await writeFile(join(ctx, 'Containerfile'), ['ARG WHO=nobody', `FROM ${TEST_IMAGE}`, 'ARG WHO', 'COPY greeting.txt /etc/greeting.txt', 'RUN echo "built for $WHO" > /etc/who.txt', ''].join('\n'));
    const built = await buildContainerfile({ context: ctx, tag, buildArgs: { WHO: 'alice' }, lint: false, store: { storeRoot: store } });
    assert.match(built.digest, /^sha256:[0-9a-f]{64}$/);
    const images = await listStoreImages(store);
    assert.deepEqual(images.map((i) => [i.name, i.digest]), [[tag, built.digest]]);
    assert.equal(run('podman', ['run', '--rm', tag, 'cat', '/etc/who.txt']).trim(), 'built for alice');

    // The same image linted: busybox has no kernel, no systemd, no ostree layout.
    await assert.rejects(
      buildContainerfile({ context: ctx, tag, buildArgs: { WHO: 'alice' }, store: { storeRoot: join(dir, 'store2') } }),
      (e: unknown) => isBasaltError(e, 'invalid') && e.message.includes(tag) && e.message.includes('kernel') && e.message.includes('systemd'),
    );
    assert.deepEqual(await listStoreImages(join(dir, 'store2')), [], 'nothing stored when lint fails');

    // A failing step: the Containerfile is named and podman's reason is shown.
    await writeFile(join(ctx, 'Broken.containerfile'), [`FROM ${TEST_IMAGE}`, 'RUN echo about to fail && cat /does/not/exist', ''].join('\n'));
    await assert.rejects(
      buildContainerfile({ context: ctx, file: join(ctx, 'Broken.containerfile'), tag: `${tag}-broken`, lint: false, store: { storeRoot: store } }),
      (e: unknown) => isBasaltError(e, 'tool') && e.message.includes('Broken.containerfile') && e.message.includes('/does/not/exist'),
    );
    await assert.rejects(buildContainerfile({ context: ctx, file: join(ctx, 'Missing'), tag, store: { storeRoot: store } }), (e: unknown) => isBasaltError(e, 'not-found') && e.message.includes('Missing'));
  } finally {
    run('podman', ['rmi', '-f', tag]);
    await rm(dir, { recursive: true, force: true });
  }
});

test('basalt build uses the store\'s FROM image when podman holds an older one under the same name', async () => {
  requireTool('podman');
  await ensureTestImages();
  const dir = await tempDir('containerfile-stale');
  const store = join(dir, 'store');
  const base = `localhost/basalt-test/stale-base:${process.pid}`;
  const tag = `localhost/basalt-test/stale-child:${process.pid}`;
  try {
    // basalt's store: the image with /etc/hello.txt; podman: a different one (it was deleted there).
    const { copyImage } = await import('../../src/oci/copy.js');
    const { openSource, openDestination } = await import('../../src/oci/transports/index.js');
    await copyImage(await openSource(`containers-storage:${TEST_IMAGE}`), await openDestination(`store:${base}`, { storeRoot: store }));
    run('podman', ['tag', TEST_IMAGE_LAYERED, base]);
    const ctx = join(dir, 'ctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'Containerfile'), [`FROM ${base}`, 'RUN cat /etc/hello.txt > /etc/copied.txt', ''].join('\n'));
    await buildContainerfile({ context: ctx, tag, lint: false, store: { storeRoot: store } });
    assert.match(run('podman', ['run', '--rm', tag, 'cat', '/etc/copied.txt']), /hello from basalt test image/);
  } finally {
    run('podman', ['rmi', '-f', tag, base]);
    await rm(dir, { recursive: true, force: true });
  }
});
