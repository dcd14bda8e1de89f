/**
 * Interop with podman: an image built by podman (imported base + a build step that deletes
 * a file and replaces a directory, so its layer has whiteouts and an opaque marker) is read
 * from `podman save --format oci-dir`, its layers applied by basalt, and the result compared
 * with `podman export` of a container made from the same image.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, link, mkdir, readFile, symlink, writeFile, chmod } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { VerifyingStream } from '../../../src/oci/digest.js';
import type { ImageManifest, ImageIndex } from '../../../src/oci/manifest.js';
import { unpackLayers } from '../../../src/oci/layer/apply.js';
import { requireTool, run, withTempDir } from '../../harness/tools.js';
import { describeTar, describeTree, type NodeFacts } from './helpers.js';

const CAPABILITY = '0100000200200000000000000000000000000000';

/** A tiny rootfs with a shell and coreutils copied from the host (with their libraries). */
async function makeRootfs(root: string): Promise<void> {
  for (const d of ['usr/bin', 'usr/lib', 'usr/lib64', 'data/replaced/sub', 'data/keep', 'etc']) await mkdir(join(root, d), { recursive: true });
  for (const [name, target] of [['bin', 'usr/bin'], ['lib', 'usr/lib'], ['lib64', 'usr/lib64']] as const) await symlink(target, join(root, name));
  const programs = ['sh', 'rm', 'mkdir', 'chmod', 'chown', 'ln', 'touch'];
  const files = new Set<string>();
  for (const program of programs) {
    const path = run('sh', ['-c', `command -v ${program}`]).trim();
    files.add(path);
    for (const m of run('ldd', [path]).matchAll(/(\/\S+) \(0x/g)) files.add(m[1] as string);
  }
  for (const file of files) {
    // Merged /usr: /bin/x lives at /usr/bin/x, /lib/x at /usr/lib/x.
    const inImage = file.replace(/^\/(bin|lib|lib64)\//, '/usr/$1/').replace(/^\/usr\/usr\//, '/usr/');
    await mkdir(dirname(join(root, inImage)), { recursive: true });
    await copyFile(file, join(root, inImage));
    await chmod(join(root, inImage), 0o755);
  }
  await writeFile(join(root, 'data/deleteme'), 'to be deleted');
  await writeFile(join(root, 'data/replaced/old'), 'old');
  await writeFile(join(root, 'data/replaced/sub/deep'), 'deep');
  await writeFile(join(root, 'data/keep/file'), 'kept');
  await link(join(root, 'data/keep/file'), join(root, 'data/keep/hardlink'));
  await symlink('../keep/file', join(root, 'data/relative-link'));
  await symlink('/etc/absolute-target', join(root, 'data/absolute-link'));
  await writeFile(join(root, 'data/ping'), 'pretend binary');
  run('setcap', ['cap_net_raw+ep', join(root, 'data/ping')]);
  await writeFile(join(root, 'data/owned'), 'owned');
  run('chown', ['1234:5678', join(root, 'data/owned')]);
}

/** Paths podman itself creates in a container's root (mount points, generated files). */
const RUNTIME_PATHS = /^(dev|proc|sys|run|etc\/(hosts|hostname|resolv\.conf|passwd|group)|run\/.*)$/;

test('layers of a podman-built image applied by basalt equal podman export', { timeout: 300_000 }, async () => {
  requireTool('podman');
  requireTool('setcap');
  requireTool('setfattr');
  const tag = `${process.pid}-${Date.now()}`;
  const base = `localhost/basalt-layer-base:${tag}`;
  const image = `localhost/basalt-layer-built:${tag}`;
  await withTempDir('podman-layers', async (dir) => {
    let container: string | undefined;
    try {
      const rootfs = join(dir, 'rootfs');
      await makeRootfs(rootfs);
      run('tar', ['--xattrs', '--xattrs-include=*', '--format=posix', '-C', rootfs, '-cf', join(dir, 'base.tar'), '.']);
      run('podman', ['import', join(dir, 'base.tar'), base]);
      const context = join(dir, 'context');
      await mkdir(context);
      await writeFile(join(context, 'added'), 'copied in');
      await writeFile(join(context, 'Containerfile'), [
        `FROM ${base}`,
        'RUN rm /data/deleteme && rm -r /data/replaced && mkdir -p /data/replaced && touch /data/replaced/new && chmod 700 /data/keep && chown 7:8 /data/keep/file',
        'COPY added /data/added',
        '',
      ].join('\n'));
      run('podman', ['build', '--network=none', '-t', image, '-f', join(context, 'Containerfile'), context]);

      const ociDir = join(dir, 'oci');
      run('podman', ['save', '--format', 'oci-dir', '-o', ociDir, image]);
      const index = JSON.parse(await readFile(join(ociDir, 'index.json'), 'utf8')) as ImageIndex;
      const blob = (digest: string): string => join(ociDir, 'blobs', ...digest.split(':'));
      const manifestDigest = index.manifests[0]?.digest as string;
      const manifest = JSON.parse(await readFile(blob(manifestDigest), 'utf8')) as ImageManifest;
      assert.ok(manifest.layers.length >= 2, 'base layer plus build layers');
      const unpacked = join(dir, 'unpacked');
      const layerStreams = manifest.layers.map((l) => createReadStream(blob(l.digest)).pipe(new VerifyingStream(l.digest, l.size, `layer ${l.digest}`)));
      const summaries = await unpackLayers(layerStreams, unpacked, { what: image });
      assert.ok(summaries.some((s) => s.whiteouts > 0), 'the build layer has whiteouts');
      for (const s of summaries) assert.deepEqual(s.skippedXattrs, []);

      container = run('podman', ['create', image, '/bin/sh']).trim();
      const exported = join(dir, 'export.tar');
      run('podman', ['export', '-o', exported, container]);
      const fromPodman = await describeTar(createReadStream(exported));
      const fromBasalt = await describeTree(unpacked);

      assert.equal(fromBasalt.has('data/deleteme'), false);
      assert.deepEqual([...fromBasalt.keys()].filter((p) => p.startsWith('data/replaced')).sort(), ['data/replaced', 'data/replaced/new']);
      assert.equal(fromBasalt.get('data/ping')?.xattrs?.['security.capability'], CAPABILITY);
      assert.deepEqual([fromBasalt.get('data/owned')?.uid, fromBasalt.get('data/owned')?.gid], [1234, 5678]);

      // podman export writes hardlinks as links to the first name; compare the content they share.
      const resolved = (facts: NodeFacts): NodeFacts => (facts.type === 'hardlink' ? (fromPodman.get(facts.link as string) as NodeFacts) : facts);
      for (const [path, mine] of fromBasalt) {
        if (RUNTIME_PATHS.test(path)) continue;
        const theirs = fromPodman.get(path);
        assert.ok(theirs, `podman export lacks ${path}`);
        const comparable = (f: NodeFacts): NodeFacts => {
          const { link, xattrs, ...rest } = f;
          return { ...rest, ...(f.type === 'symlink' ? { link } : {}), xattrs: xattrs ?? {} };
        };
        assert.deepEqual(comparable(mine), comparable(resolved(theirs)), path);
      }
      for (const path of fromPodman.keys()) if (!RUNTIME_PATHS.test(path)) assert.ok(fromBasalt.has(path), `basalt's tree lacks ${path}`);
    } finally {
      if (container) run('podman', ['rm', '-f', container]);
      for (const name of [image, base]) {
        try {
          run('podman', ['rmi', '-f', name]);
        } catch {
          // already gone, or never built
        }
      }
    }
  });
});
