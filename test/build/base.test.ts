import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PassThrough } from 'node:stream';
import { buildBaseImage, type BaseBuildResult } from '../../src/build/base.js';
import { lintTree } from '../../src/build/lint.js';
import { treeFromImage } from '../../src/build/root-tree.js';
import { exportRootfs } from '../../src/oci/filesystem.js';
import { readImage } from '../../src/oci/image.js';
import { readTar } from '../../src/oci/layer/tar.js';
import { openSource } from '../../src/oci/transports/index.js';
import { BASE_SOURCE_DATE_EPOCH, baseImage } from '../harness/base-image.js';
import { basaltOk } from '../harness/cli.js';
import { REPO_ROOT, requireTool, run, tempDir } from '../harness/tools.js';

/**
 * A real base build, compared with the one the VM tests share (test/harness/base-image.ts,
 * built with the same SOURCE_DATE_EPOCH in this run or an earlier one, by another process
 * at another wall-clock time): the two must be byte-identical. mmdebstrap's tarball is
 * cached in /var/cache/basalt/base (first run on a machine: about 1 minute more); a build
 * then spends ~55 s in dracut and ~40 s packing.
 */
const EPOCH = BASE_SOURCE_DATE_EPOCH;

test('basalt base build: bootable, lint-clean, initramfs with ostree-prepare-root, byte-identical to a build made at another time', { timeout: 30 * 60_000 }, async () => {
  for (const t of ['mmdebstrap', 'systemd-nspawn', 'lsinitrd']) requireTool(t);
  const dir = await tempDir('base');
  const store = join(dir, 'store');
  const phases: string[] = [];
  const build = (name: string): Promise<BaseBuildResult> =>
    buildBaseImage({ name, sourceDateEpoch: EPOCH, transport: { storeRoot: store }, onEvent: (e) => { if (e.type === 'phase-done') phases.push(`${e.phase} ${e.seconds.toFixed(1)} s${e.detail ? ` (${e.detail})` : ''}`); } });
  try {
    const shared = await baseImage();
    const sharedDigest = basaltOk(['image', 'digest', shared]).trim();
    const first = await build('localhost/basalt-test/base:1');
    process.stderr.write(`base build phases:\n  ${phases.join('\n  ')}\nthis build ${first.digest}, the shared build ${sharedDigest}, ${(first.size / 1048576).toFixed(1)} MiB\n`);
    assert.equal(first.digest, sharedDigest, 'same inputs and SOURCE_DATE_EPOCH give the same image');

    const source = await openSource('localhost/basalt-test/base:1', { storeRoot: store });
    try {
      const image = await readImage(source);
      assert.equal(image.config.config?.Labels?.['containers.bootc'], '1');
      const tree = await treeFromImage(image, 'base');
      const report = lintTree(tree);
      assert.equal(report.fatal, 0, JSON.stringify(report.findings, null, 2));
      const kver = first.kernel;
      for (const f of ['vmlinuz', 'initramfs.img']) assert.equal(tree.entries.get(`usr/lib/modules/${kver}/${f}`)?.type, 'file', f);
      for (const gone of ['etc/hostname', 'etc/ssh/ssh_host_ed25519_key', 'boot/vmlinuz-' + kver, 'usr/etc', 'dev/null']) assert.equal(tree.entries.has(gone), false, gone);
      assert.equal(tree.entries.get('etc/machine-id')?.size, 0);
      assert.equal(tree.entries.get('ostree')?.linkname, 'sysroot/ostree');
      assert.equal(tree.entries.get('home')?.linkname, 'var/home');
      for (const f of ['usr/lib/basalt/basalt.mjs', 'usr/lib/basalt/node_modules/zstd-napi/build/Release/binding.node', 'usr/bin/basalt', 'etc/systemd/network/80-basalt-dhcp.network', 'etc/systemd/system/multi-user.target.wants/systemd-networkd.service', 'usr/lib/bootc/kargs.d/10-basalt-console.toml'])
        assert.ok(tree.entries.has(f), f);
      assert.equal(tree.entries.has('var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease'), false, 'apt lists cleaned');
      // Every chunk the bundle imports lazily (openpgp, yaml, sigstore) must be installed beside it.
      for (const chunk of (await readdir(join(REPO_ROOT, 'dist/chunks'))).filter((n) => n.endsWith('.mjs')))
        assert.equal(tree.entries.get(`usr/lib/basalt/chunks/${chunk}`)?.type, 'file', chunk);

      // The initramfs must carry ostree's dracut module, or the first boot cannot find its deployment.
      const initramfs = join(dir, 'initramfs.img');
      const tar = new PassThrough({ highWaterMark: 1 << 20 });
      const exporting = exportRootfs(image, tar);
      exporting.catch((e: unknown) => tar.destroy(e as Error));
      for await (const entry of readTar(tar, 'base')) {
        if (entry.path.replace(/^\.?\//, '') === `usr/lib/modules/${kver}/initramfs.img`) await pipeline(entry.body, createWriteStream(initramfs));
      }
      await exporting;
      const listing = run('lsinitrd', [initramfs]);
      assert.match(listing, /ostree-prepare-root/);
    } finally {
      await source.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
