import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile, readdir, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { basalt, basaltOk, CLI } from '../harness/cli.js';
import { ensureTestImages, TEST_IMAGE, TEST_IMAGE_LAYERED } from '../harness/images.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { run, tempDir } from '../harness/tools.js';

/** The `basalt image` commands end to end, as a user types them. */
let open: TestRegistry;
let locked: TestRegistry;
let work: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  await ensureTestImages();
  [open, locked] = await Promise.all([startRegistry({ flavour: 'open' }), startRegistry({ flavour: 'htpasswd' })]);
  work = await tempDir('commands');
  env = { BASALT_STORE: join(work, 'store'), REGISTRY_AUTH_FILE: join(work, 'auth.json'), HOME: work };
  basaltOk(['image', 'copy', `containers-storage:${TEST_IMAGE_LAYERED}`, 'test/layered:2'], { env });
});

after(async () => {
  await Promise.all([open?.stop(), locked?.stop()]);
});

test('store: ls lists names, rm removes them and collects their blobs', () => {
  basaltOk(['image', 'copy', `containers-storage:${TEST_IMAGE}`, 'test/removable:1'], { env });
  const listed = JSON.parse(basaltOk(['image', 'ls', '--format', 'json'], { env })) as { name: string }[];
  assert.deepEqual(listed.map((i) => i.name).sort(), ['localhost/test/layered:2', 'localhost/test/removable:1']);
  basaltOk(['image', 'rm', 'test/removable:1'], { env });
  assert.doesNotMatch(basaltOk(['image', 'ls'], { env }), /removable/);
  const gone = basalt(['image', 'inspect', 'test/removable:1'], { env });
  assert.equal(gone.status, 3);
});

test('mutate, append and flatten write new images that podman runs as expected', async () => {
  basaltOk(['image', 'mutate', 'test/layered:2', '--label', 'tier=prod', '--env', 'GREETING=hi', '--cmd', '["/bin/cat", "/etc/extra.txt"]', '--workdir', '/etc', '-t', 'test/mutated:1'], { env });
  const config = JSON.parse(basaltOk(['image', 'inspect', '--config', 'test/mutated:1'], { env })) as { config: { Labels: Record<string, string>; Env: string[]; WorkingDir: string } };
  assert.equal(config.config.Labels.tier, 'prod');
  assert.ok(config.config.Env.includes('GREETING=hi'));
  assert.equal(config.config.WorkingDir, '/etc');
  const extra = join(work, 'extra');
  await mkdir(join(extra, 'etc'), { recursive: true });
  await writeFile(join(extra, 'etc/extra.txt'), 'appended\n');
  basaltOk(['image', 'append', 'test/mutated:1', extra, '-t', 'test/appended:1'], { env });
  basaltOk(['image', 'flatten', 'test/appended:1', '-t', 'test/flat:1'], { env });
  const flat = JSON.parse(basaltOk(['image', 'inspect', 'test/flat:1'], { env })) as { Layers: string[] };
  assert.equal(flat.Layers.length, 1);
  const ref = `${open.host}/commands/flat:1`;
  basaltOk(['image', 'copy', '--dest-tls-verify=false', 'test/flat:1', `docker://${ref}`], { env });
  assert.equal(run('podman', ['run', '--rm', '--pull=always', '--tls-verify=false', ref]).trim(), 'appended');
  // The whiteouts of the layered image survive flattening: /etc/hello.txt was deleted.
  assert.match(run('podman', ['run', '--rm', '--tls-verify=false', ref, '/bin/ls', '/etc']), /layered\.txt/);
  assert.doesNotMatch(run('podman', ['run', '--rm', '--tls-verify=false', ref, '/bin/ls', '/etc']), /hello\.txt/);
  run('podman', ['rmi', '-f', ref]);
});

test('export writes the flattened tree; unpack applies the layers; both drop deleted files', async () => {
  const tar = join(work, 'rootfs.tar');
  basaltOk(['image', 'export', 'test/layered:2', '-o', tar], { env });
  const names = run('tar', ['-tf', tar]).split('\n');
  assert.ok(names.some((n) => n.replace(/^\.?\//, '') === 'etc/layered.txt'));
  assert.ok(!names.some((n) => n.includes('hello.txt') && n.startsWith('etc')), 'deleted file absent');
  assert.ok(!names.some((n) => n.includes('.wh.')), 'no whiteout markers');
  const dir = join(work, 'unpacked');
  basaltOk(['image', 'unpack', 'test/layered:2', dir], { env });
  assert.equal(await readFile(join(dir, 'etc/layered.txt'), 'utf8'), 'layered\n');
  await assert.rejects(lstat(join(dir, 'etc/hello.txt')));
  assert.deepEqual(await readdir(join(dir, 'var/lib/data')), ['new'], 'replaced directory holds only the new content');
  assert.ok((await lstat(join(dir, 'bin/sh'))).isSymbolicLink());
  const refused = basalt(['image', 'export', 'test/layered:2'], { env });
  assert.equal(refused.status, 0, 'stdout is a pipe here, so export streams to it');
});

test('list-tags and delete on a registry, a layout and the store', () => {
  const repo = `docker://${open.host}/commands/tags`;
  for (const t of ['a', 'b']) basaltOk(['image', 'copy', '--dest-tls-verify=false', 'test/layered:2', `${repo}:${t}`], { env });
  assert.deepEqual((JSON.parse(basaltOk(['image', 'list-tags', '--tls-verify=false', repo], { env })) as string[]).sort(), ['a', 'b']);
  basaltOk(['image', 'delete', '--tls-verify=false', `${repo}:a`], { env });
  const after = basalt(['image', 'inspect', '--tls-verify=false', `${repo}:a`], { env });
  assert.equal(after.status, 3);
  const layout = join(work, 'tags-layout');
  for (const t of ['x', 'y']) basaltOk(['image', 'copy', 'test/layered:2', `oci:${layout}:${t}`], { env });
  assert.deepEqual(JSON.parse(basaltOk(['image', 'list-tags', `oci:${layout}`], { env })), ['x', 'y']);
  basaltOk(['image', 'delete', `oci:${layout}:x`], { env });
  assert.deepEqual(JSON.parse(basaltOk(['image', 'list-tags', `oci:${layout}`], { env })), ['y']);
});

test('login stores credentials podman can use; logout removes them; a bad password is refused', () => {
  const user = Object.keys(locked.users)[0] as string;
  const password = locked.users[user] as string;
  const denied = basalt(['image', 'copy', '--dest-tls-verify=false', 'test/layered:2', `docker://${locked.host}/commands/private:1`], { env });
  assert.equal(denied.status, 4);
  assert.match(denied.stderr, /log in/);
  const bad = basalt(['login', '--tls-verify=false', '-u', user, '--password-stdin', locked.host], { env, input: 'wrong\n' });
  assert.equal(bad.status, 4);
  basaltOk(['login', '--tls-verify=false', '-u', user, '--password-stdin', locked.host], { env, input: `${password}\n` });
  basaltOk(['image', 'copy', '--dest-tls-verify=false', 'test/layered:2', `docker://${locked.host}/commands/private:1`], { env });
  run('podman', ['pull', '--tls-verify=false', '--authfile', join(work, 'auth.json'), `${locked.host}/commands/private:1`]);
  run('podman', ['rmi', '-f', `${locked.host}/commands/private:1`]);
  basaltOk(['logout', locked.host], { env });
  assert.equal(basalt(['image', 'inspect', '--tls-verify=false', `docker://${locked.host}/commands/private:1`], { env }).status, 4);
});

test('sync: a repository to a directory (skopeo dir: images), the directory to another registry, OCI layouts, and a YAML list', async () => {
  const repo = `${open.host}/mirror/src`;
  for (const t of ['1', '2']) basaltOk(['image', 'copy', '--dest-tls-verify=false', 'test/layered:2', `docker://${repo}:${t}`], { env });
  const usb = join(work, 'usb');
  basaltOk(['image', 'sync', '--src', 'docker', '--dest', 'dir', '--src-tls-verify=false', repo, usb], { env });
  // skopeo sync's layout: DEST/REPO:TAG, one dir: image each.
  assert.deepEqual((await readdir(usb)).sort(), ['src:1', 'src:2']);
  assert.equal(await readFile(join(usb, 'src:1', 'version'), 'utf8'), 'Directory Transport Version: 1.1\n');
  basaltOk(['image', 'sync', '--src', 'dir', '--dest', 'docker', '--dest-tls-verify=false', usb, `${open.host}/airgap`], { env });
  assert.deepEqual((JSON.parse(basaltOk(['image', 'list-tags', '--tls-verify=false', `docker://${open.host}/airgap/src`], { env })) as string[]).sort(), ['1', '2']);
  // --dest oci keeps the OCI-layout mirror: one layout per repository, one ref per tag.
  const layouts = join(work, 'usb-oci');
  basaltOk(['image', 'sync', '--src', 'docker', '--dest', 'oci', '--src-tls-verify=false', repo, layouts], { env });
  assert.deepEqual(JSON.parse(basaltOk(['image', 'list-tags', `oci:${join(layouts, 'src')}`], { env })).sort(), ['1', '2']);
  basaltOk(['image', 'sync', '--src', 'oci', '--dest', 'docker', '--dest-tls-verify=false', layouts, `${open.host}/airgap-oci`], { env });
  assert.deepEqual((JSON.parse(basaltOk(['image', 'list-tags', '--tls-verify=false', `docker://${open.host}/airgap-oci/src`], { env })) as string[]).sort(), ['1', '2']);
  const yaml = join(work, 'sync.yaml');
  await writeFile(yaml, `${open.host}:\n  tls-verify: false\n  images:\n    mirror/src: ["2"]\n  images-by-tag-regex:\n    airgap/src: ^1$\n`);
  basaltOk(['image', 'sync', '--src', 'yaml', '--dest', 'dir', '--scoped', yaml, join(work, 'yaml-out')], { env });
  assert.deepEqual(await readdir(join(work, 'yaml-out', open.host, 'mirror')), ['src:2']);
  assert.deepEqual(await readdir(join(work, 'yaml-out', open.host, 'airgap')), ['src:1']);
  await writeFile(yaml, `${open.host}:\n  imagez: {}\n`);
  const bad = basalt(['image', 'sync', '--src', 'yaml', '--dest', 'dir', yaml, join(work, 'never')], { env });
  assert.equal(bad.status, 5);
  assert.match(bad.stderr, /unknown key "imagez"/);
});

test('--progress json reports each blob as JSON Lines on stderr', () => {
  const r = basalt(['image', 'copy', '--progress', 'json', 'test/layered:2', `oci:${join(work, 'progress')}:p`], { env });
  assert.equal(r.status, 0, r.stderr);
  const events = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as { type: string });
  assert.ok(events.some((e) => e.type === 'blob-done'));
  assert.equal(events.at(-1)?.type, 'manifest');
});

test('on a terminal, copy draws per-blob progress bars (run under script(1) for a real TTY)', () => {
  const cli = `${process.execPath} ${CLI}`;
  const cmd = `BASALT_STORE=${env.BASALT_STORE} ${cli} image copy test/layered:2 oci:${join(work, 'tty')}:t`;
  const out = run('script', ['-qec', cmd, '/dev/null']);
  assert.match(out, /Copying blob [0-9a-f]{12} \[=+\] done/);
  assert.match(out, /\x1b\[\d+A/, 'redraws in place');
  assert.match(out, /Writing manifest sha256:[0-9a-f]{64}/);
});
