import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, run, tempDir } from '../harness/tools.js';
import { ensureTestImages, TEST_IMAGE } from '../harness/images.js';
import { readAci } from '../../src/appc/archive.js';
import type { ImageManifest } from '../../src/appc/manifest.js';
import { actool, basaltAsync, basaltAsyncOk, runAsync } from './helpers.js';

const IMAGE = 'localhost/basalt-aci/d2a:1';
let dir: string;
let archive: string;
let actoolBin: string;
let layerCount: number;

before(async () => {
  requireTool('podman');
  dir = await tempDir('aci-d2a');
  actoolBin = await actool();
  await ensureTestImages();
  await writeFile(join(dir, 'Containerfile'), [
    `FROM ${TEST_IMAGE}`,
    'RUN echo converted > /etc/greeting && rm /etc/hello.txt',
    'ENV GREETING_FILE=/etc/greeting',
    'EXPOSE 8080 53/udp',
    'VOLUME /data',
    'WORKDIR /srv',
    'LABEL team=appc',
    'CMD ["/bin/cat", "/etc/greeting"]',
    '',
  ].join('\n'));
  run('podman', ['build', '--pull=never', '-q', '-t', IMAGE, dir]);
  archive = join(dir, 'd2a.tar');
  run('podman', ['save', '--format', 'docker-archive', '-o', archive, IMAGE]);
  layerCount = (JSON.parse(run('podman', ['image', 'inspect', IMAGE])) as { RootFS: { Layers: string[] } }[])[0]?.RootFS.Layers.length ?? 0;
});
after(async () => {
  await runAsync('podman', ['rmi', '-f', IMAGE]);
  await rm(dir, { recursive: true, force: true });
});

async function bothAccept(file: string): Promise<ImageManifest> {
  const peer = await runAsync(actoolBin, ['validate', file]);
  assert.equal(peer.status, 0, `actool refuses ${file}: ${peer.out}`);
  await basaltAsyncOk(['aci', 'validate', file]);
  return (await readAci(file)).manifest;
}

test('from-docker squashes a podman-built docker archive into one ACI with docker2aci\'s mapping and name', async () => {
  const out = join(dir, 'squashed');
  const files = (await basaltAsyncOk(['aci', 'from-docker', '-o', out, archive])).trim().split('\n');
  assert.deepEqual(files, [join(out, 'basalt-aci-d2a-1.aci')]);
  const m = await bothAccept(files[0] as string);
  assert.equal(m.name, 'localhost/basalt-aci/d2a');
  assert.deepEqual(Object.fromEntries((m.labels ?? []).map((l) => [l.name, l.value])), { version: '1', os: 'linux', arch: 'amd64' });
  assert.deepEqual(m.app?.exec, ['/bin/cat', '/etc/greeting']);
  assert.equal(m.app?.user, '0');
  assert.equal(m.app?.group, '0');
  assert.equal(m.app?.workingDirectory, '/srv');
  assert.ok(m.app?.environment?.some((e) => e.name === 'GREETING_FILE' && e.value === '/etc/greeting'));
  assert.deepEqual(m.app?.ports, [
    { name: '53-udp', protocol: 'udp', port: 53, count: 1, socketActivated: false },
    { name: '8080-tcp', protocol: 'tcp', port: 8080, count: 1, socketActivated: false },
  ]);
  assert.deepEqual(m.app?.mountPoints, [{ name: 'volume-data', path: '/data' }]);
  assert.equal(m.app?.userLabels?.team, 'appc');
  const annotations = Object.fromEntries((m.annotations ?? []).map((a) => [a.name, a.value]));
  assert.equal(annotations['appc.io/docker/cmd'], '["/bin/cat","/etc/greeting"]');
  assert.equal(annotations['appc.io/docker/repository'], 'basalt-aci/d2a');
  assert.equal(m.dependencies, undefined);
  const listing = run('tar', ['-tzf', files[0] as string]).split('\n');
  assert.ok(listing.includes('rootfs/etc/greeting'));
  assert.ok(!listing.includes('rootfs/etc/hello.txt'), 'a file the upper layer deleted is still there');
  assert.ok(!listing.some((l) => l.includes('.wh.')), 'whiteouts leaked into the ACI');
  assert.ok(listing.includes('rootfs/dev/stdin'));

  // The squashed ACI runs under podman once exported back to OCI.
  const back = join(dir, 'back.tar');
  const name = `localhost/basalt-aci/d2a-back:${process.pid}`;
  await basaltAsyncOk(['aci', 'export', files[0] as string, `docker-archive:${back}:${name}`]);
  run('podman', ['load', '-q', '-i', back]);
  try {
    assert.equal(run('podman', ['run', '--rm', name]).trim(), 'converted');
  } finally {
    await runAsync('podman', ['rmi', '-f', name]);
  }
});

test('from-docker --nosquash writes one ACI per layer, the top depending on the others, each with its path whitelist', async () => {
  const out = join(dir, 'layers');
  const files = (await basaltAsyncOk(['aci', 'from-docker', '--nosquash', '-o', out, `docker-archive:${archive}`])).trim().split('\n');
  assert.equal(files.length, layerCount);
  const manifests: ImageManifest[] = [];
  for (const f of files) {
    assert.match(f, /localhost\/basalt-aci\/d2a-sha256:[0-9a-f]{64}-1-linux-amd64\.aci$/);
    manifests.push(await bothAccept(f));
  }
  const top = manifests[manifests.length - 1] as ImageManifest;
  assert.deepEqual(top.dependencies?.map((d) => d.imageName), manifests.slice(0, -1).map((m) => m.name));
  assert.match(top.name, /^localhost\/basalt-aci\/d2a-sha256_[0-9a-f]{64}$/);
  assert.ok(top.pathWhitelist?.includes('/etc/greeting'));
  assert.ok(!top.pathWhitelist?.includes('/etc/hello.txt'), 'the whitelist keeps a deleted file');
  assert.ok(manifests[0]?.pathWhitelist?.includes('/etc/hello.txt'));
  assert.deepEqual(top.app?.exec, ['/bin/cat', '/etc/greeting']);
  // basalt exports only self-contained ACIs, and says so.
  const r = await basaltAsync(['aci', 'export', files[files.length - 1] as string, `oci:${join(dir, 'never')}:x`]);
  assert.equal(r.status, 6);
  assert.match(r.stderr, /depends on/);
});

test('from-docker reads any transport: containers-storage names the ACI from the reference', async () => {
  const out = join(dir, 'cs');
  const files = (await basaltAsyncOk(['aci', 'from-docker', '-o', out, `containers-storage:${IMAGE}`])).trim().split('\n');
  const m = await bothAccept(files[0] as string);
  assert.equal(m.name, 'localhost/basalt-aci/d2a');
  assert.equal(files[0], join(out, 'basalt-aci-d2a-1.aci'));
});

test('from-docker reads docker:// from a registry; the registry host becomes part of the ACI name', async () => {
  const { startRegistry } = await import('../harness/registry.js');
  const registry = await startRegistry({ flavour: 'open' });
  try {
    const ref = `docker://${registry.host}/basalt-aci/d2a:1`;
    await basaltAsyncOk(['image', 'copy', '--dest-tls-verify=false', `docker-archive:${archive}`, ref]);
    const out = join(dir, 'registry');
    const files = (await basaltAsyncOk(['aci', 'from-docker', '--tls-verify=false', '-o', out, ref])).trim().split('\n');
    assert.deepEqual(files, [join(out, 'basalt-aci-d2a-1.aci')]);
    const m = await bothAccept(files[0] as string);
    assert.equal(m.name, `${registry.host.replace(':', '_')}/basalt-aci/d2a`);
    const annotations = Object.fromEntries((m.annotations ?? []).map((a) => [a.name, a.value]));
    assert.equal(annotations['appc.io/docker/registryurl'], registry.host);
  } finally {
    await registry.stop();
  }
});
