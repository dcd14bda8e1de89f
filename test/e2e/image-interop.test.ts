import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, symlink, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { basalt, basaltOk } from '../harness/cli.js';
import { ensureTestImages, TEST_IMAGE, TEST_IMAGE_LAYERED } from '../harness/images.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { requireTool, run, tempDir } from '../harness/tools.js';

/**
 * Interop with the peers users switch from: what basalt pushes, podman runs and skopeo
 * reads; what podman and skopeo write, basalt reads; validators accept basalt's layouts.
 */
let registry: TestRegistry;
let work: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  for (const t of ['podman', 'skopeo', 'oci-image-tool', 'umoci']) requireTool(t);
  await ensureTestImages();
  registry = await startRegistry({ flavour: 'open' });
  work = await tempDir('interop');
  env = { BASALT_STORE: join(work, 'store') };
});

after(async () => {
  await registry?.stop();
});

test('basalt pushes (containers-storage → registry); podman pulls and runs it; skopeo sees the same digest', () => {
  const ref = `${registry.host}/interop/layered:1`;
  basaltOk(['image', 'copy', '--dest-tls-verify=false', `containers-storage:${TEST_IMAGE_LAYERED}`, `docker://${ref}`, '--digestfile', join(work, 'digest')], { env });
  const out = run('podman', ['run', '--rm', '--pull=always', '--tls-verify=false', ref]);
  assert.equal(out.trim(), 'layered');
  const skopeoDigest = run('skopeo', ['inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${ref}`]).trim();
  const basaltDigest = basaltOk(['image', 'digest', '--tls-verify=false', `docker://${ref}`], { env }).trim();
  assert.equal(basaltDigest, skopeoDigest);
  run('podman', ['rmi', '-f', ref]);
});

test('zstd layers basalt writes are pulled and run by podman', () => {
  const ref = `${registry.host}/interop/zstd:1`;
  basaltOk(['image', 'copy', '--dest-tls-verify=false', '--dest-compress', 'zstd', `containers-storage:${TEST_IMAGE}`, `docker://${ref}`], { env });
  const raw = JSON.parse(basaltOk(['image', 'inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { env })) as { layers: { mediaType: string }[] };
  assert.ok(raw.layers.every((l) => l.mediaType.endsWith('+zstd')));
  // A storage of its own: podman would otherwise remember the zstd form of the shared test
  // layers, and later `podman save --format docker-archive` of the test image would fail.
  const storage = ['--root', join(work, 'zstd-storage'), '--runroot', join(work, 'zstd-run'), '--storage-driver', 'vfs'];
  assert.match(run('podman', [...storage, 'run', '--rm', '--pull=always', '--tls-verify=false', ref]), /hello from basalt test image/);
  run('podman', [...storage, 'rmi', '-af']);
});

test('images podman and skopeo push are read by basalt; oci-image-tool and umoci accept basalt\'s layout', async () => {
  // A registry of its own: podman's and skopeo's blob-info cache would otherwise substitute
  // the zstd copies of these layers pushed to the shared one (Debian's oci-image-tool
  // predates zstd, and v2s2 cannot carry it).
  const fresh = await startRegistry({ flavour: 'open' });
  try {
  const ref = `${fresh.host}/interop/from-podman:1`;
  run('podman', ['push', '--tls-verify=false', TEST_IMAGE_LAYERED, `docker://${ref}`]);
  const layout = join(work, 'layout');
  basaltOk(['image', 'copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:podman`], { env });
  run('oci-image-tool', ['validate', '--type', 'image', '--ref', 'name=podman', layout]);
  assert.match(run('umoci', ['ls', '--layout', layout]), /podman/);
  // skopeo pushes a v2s2 image from the gzip layout above; basalt copies it to the store and
  // back out as OCI.
  const ref2 = `${fresh.host}/interop/from-skopeo:1`;
  run('skopeo', ['copy', '--dest-tls-verify=false', '--format', 'v2s2', `oci:${layout}:podman`, `docker://${ref2}`]);
  const info = JSON.parse(basaltOk(['image', 'inspect', '--tls-verify=false', `docker://${ref2}`], { env })) as { LayersData: { MIMEType: string }[] };
  assert.ok(info.LayersData.every((l) => l.MIMEType.startsWith('application/vnd.docker.')));
  basaltOk(['image', 'copy', '--src-tls-verify=false', '--format', 'oci', `docker://${ref2}`, 'interop/from-skopeo:oci'], { env });
  const layout2 = join(work, 'layout2');
  basaltOk(['image', 'copy', 'interop/from-skopeo:oci', `oci:${layout2}:x`], { env });
  run('oci-image-tool', ['validate', '--type', 'image', '--ref', 'name=x', layout2]);
  // skopeo reads what basalt wrote.
  assert.match(run('skopeo', ['inspect', `oci:${layout2}:x`]), /"Architecture": "amd64"/);
  } finally {
    await fresh.stop();
  }
});

test('podman load accepts basalt\'s docker-archive and oci-archive', () => {
  const dockerArchive = join(work, 'img.docker.tar');
  basaltOk(['image', 'copy', `containers-storage:${TEST_IMAGE_LAYERED}`, `docker-archive:${dockerArchive}:localhost/interop/archived:docker`], { env });
  run('podman', ['load', '-q', '-i', dockerArchive]);
  assert.equal(run('podman', ['run', '--rm', 'localhost/interop/archived:docker']).trim(), 'layered');
  const ociArchive = join(work, 'img.oci.tar');
  basaltOk(['image', 'copy', `containers-storage:${TEST_IMAGE_LAYERED}`, `oci-archive:${ociArchive}:archived`], { env });
  run('podman', ['load', '-q', '-i', ociArchive]);
  run('podman', ['rmi', '-f', 'localhost/interop/archived:docker']);
});

test('basalt image copy runs no other program (a PATH shim logs every exec), except podman for containers-storage', async () => {
  const shims = join(work, 'shims');
  const log = join(work, 'exec.log');
  await mkdir(shims);
  const realPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  const shim = join(work, 'shim.sh');
  await writeFile(shim, `#!/bin/sh\necho "\${0##*/} $*" >> ${log}\nPATH=${realPath} exec "\${0##*/}" "$@"\n`);
  await chmod(shim, 0o755);
  const names = new Set<string>();
  for (const dir of realPath.split(':')) for (const n of await readdir(dir).catch(() => [] as string[])) names.add(n);
  for (const n of names) await symlink(shim, join(shims, n));
  await writeFile(log, '');
  const shimEnv = { ...env, PATH: shims };
  const layout = join(work, 'shim-layout');
  const src = `docker://${registry.host}/interop/layered:1`;
  basaltOk(['image', 'copy', '--src-tls-verify=false', '--dest-compress', 'zstd', src, `oci:${layout}:a`], { env: shimEnv });
  basaltOk(['image', 'copy', '--dest-tls-verify=false', `oci:${layout}:a`, `docker://${registry.host}/interop/shim:1`], { env: shimEnv });
  basaltOk(['image', 'copy', `oci:${layout}:a`, `oci-archive:${join(work, 'shim.tar')}`], { env: shimEnv });
  assert.equal(await readFile(log, 'utf8'), '', 'no program was executed');
  // The shim works: the one transport that needs podman shows up in the log.
  basaltOk(['image', 'copy', `containers-storage:${TEST_IMAGE}`, `oci:${layout}:b`], { env: shimEnv });
  assert.match(await readFile(log, 'utf8'), /^podman /m);
});

test('CLI errors: exit codes and messages name the input', () => {
  const missing = basalt(['image', 'inspect', '--tls-verify=false', `docker://${registry.host}/interop/nope:1`], { env });
  assert.equal(missing.status, 3);
  assert.match(missing.stderr, /nope/);
  const usage = basalt(['image', 'copy', 'only-one-arg'], { env });
  assert.equal(usage.status, 2);
  const badTransport = basalt(['image', 'inspect', 'docker-daemon:busybox:latest'], { env });
  assert.equal(badTransport.status, 6);
  assert.match(badTransport.stderr, /transport "docker-daemon" is not supported/);
  const noDir = basalt(['image', 'inspect', `dir:${join(work, 'no-such-dir')}`], { env });
  assert.equal(noDir.status, 3);
  assert.match(noDir.stderr, /no-such-dir/);
});
