import { mkdir, writeFile, symlink, link, copyFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, run, withTempDir } from './tools.js';

/**
 * Small runnable test images, built with podman from Debian's static busybox (there is no
 * internet registry here). Built once per machine and reused: `podman image exists` first.
 */
export const TEST_IMAGE = 'localhost/basalt-test/busybox:1';
/** TEST_IMAGE plus a layer that deletes a file and replaces a directory (whiteouts). */
export const TEST_IMAGE_LAYERED = 'localhost/basalt-test/busybox:2';

function exists(ref: string): boolean {
  try {
    run('podman', ['image', 'exists', ref]);
    return true;
  } catch {
    return false;
  }
}

export async function ensureTestImages(): Promise<void> {
  requireTool('podman');
  requireTool('busybox', 'install Debian\'s busybox-static (./scripts/setup does)');
  if (!exists(TEST_IMAGE)) {
    await withTempDir('busybox-root', async (dir) => {
      const root = join(dir, 'root');
      for (const d of ['bin', 'etc', 'usr/share/doc/test', 'tmp', 'var/lib/data'].map((d) => join(root, d))) await mkdir(d, { recursive: true });
      await copyFile('/bin/busybox', join(root, 'bin/busybox'));
      await chmod(join(root, 'bin/busybox'), 0o755);
      for (const applet of ['sh', 'echo', 'cat', 'ls', 'true']) await symlink('busybox', join(root, 'bin', applet));
      await writeFile(join(root, 'etc/hello.txt'), 'hello from basalt test image\n');
      await link(join(root, 'etc/hello.txt'), join(root, 'usr/share/doc/test/hello-hardlink.txt'));
      await writeFile(join(root, 'var/lib/data/keep'), 'data\n');
      await writeFile(join(root, 'usr/share/doc/test/long-' + 'n'.repeat(150)), 'long name\n');
      await chmod(join(root, 'tmp'), 0o1777);
      const tar = join(dir, 'root.tar');
      run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', root, '-cf', tar, '.']);
      run('podman', ['import', '--change', 'CMD ["/bin/cat", "/etc/hello.txt"]', tar, TEST_IMAGE]);
    });
  }
  if (!exists(TEST_IMAGE_LAYERED)) {
    await withTempDir('busybox-build', async (dir) => {
      await writeFile(
        join(dir, 'Containerfile'),
        [`FROM ${TEST_IMAGE}`, 'RUN rm /etc/hello.txt && rm -r /var/lib/data && mkdir -p /var/lib/data && echo new > /var/lib/data/new', 'RUN echo layered > /etc/layered.txt', 'CMD ["/bin/cat", "/etc/layered.txt"]', ''].join('\n'),
      );
      run('podman', ['build', '--pull=never', '-t', TEST_IMAGE_LAYERED, dir]);
    });
  }
}
