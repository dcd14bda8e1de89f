import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { appendPath, packImage } from '../../src/oci/filesystem.js';
import { writeImage, type Image } from '../../src/oci/image.js';
import { mutateConfig } from '../../src/oci/mutate.js';
import { Scratch } from '../../src/oci/scratch.js';
import { openDestination } from '../../src/oci/transports/index.js';

/**
 * Tiny bootable-layout test images written to an OCI layout with basalt's own library:
 * a fake kernel tree, /etc files, kargs.d, whiteouts and an opaque directory across layers,
 * a directory whose mode and owner change in the upper layer, xattrs (user.* and a file
 * capability) and a device node that must be dropped.
 */
export const KVER = '6.1.0-test';

async function put(root: string, path: string, content: string, mode = 0o644): Promise<void> {
  const host = join(root, path);
  await mkdir(join(host, '..'), { recursive: true });
  await writeFile(host, content);
  await chmod(host, mode);
}

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Layer 1: the "base". `kernel` varies the kernel content (a new kernel in v2). */
export async function baseLayer(dir: string, kernel = 'kernel v1'): Promise<void> {
  await put(dir, `usr/lib/modules/${KVER}/vmlinuz`, `${kernel}\n`);
  await put(dir, `usr/lib/modules/${KVER}/initramfs.img`, `initramfs for ${kernel}\n`);
  await put(dir, 'etc/os-release', 'ID=basaltest\nPRETTY_NAME="Basalt Test"\nVERSION_ID=1\n');
  await put(dir, 'etc/hostname', 'basalt-test\n');
  await put(dir, 'etc/gone.conf', 'deleted by layer 2\n');
  await put(dir, 'usr/share/opq/a', 'hidden by the opaque marker\n');
  await put(dir, 'usr/share/opq/sub/b', 'also hidden\n');
  await put(dir, 'var/lib/app/data.txt', 'image var content\n');
  await put(dir, 'usr/bin/tool', '#!/bin/sh\necho tool\n', 0o755);
  await put(dir, 'usr/bin/ping', '#!/bin/sh\necho ping\n', 0o755);
  await put(dir, 'usr/lib/bootc/kargs.d/10-console.toml', 'kargs = ["console=ttyS0,115200", "quiet"]\n');
  await put(dir, 'usr/lib/bootc/kargs.d/20-arm.toml', 'kargs = ["arm.only=1"]\nmatch-architectures = ["aarch64"]\n');
  await mkdir(join(dir, 'srv/site'), { recursive: true });
  await chmod(join(dir, 'srv'), 0o755);
  await mkdir(join(dir, 'dev'), { recursive: true });
  sh('mknod', [join(dir, 'dev/null'), 'c', '1', '3']);
  sh('mkfifo', [join(dir, 'usr/share/fifo')]);
  sh('setfattr', ['-n', 'user.basalt', '-v', 'kept', join(dir, 'usr/bin/tool')]);
  sh('setcap', ['cap_net_raw+ep', join(dir, 'usr/bin/ping')]);
}

/** Layer 2: deletes, hides, re-owns and adds. */
export async function upperLayer(dir: string, extra = 'v2'): Promise<void> {
  await put(dir, 'etc/.wh.gone.conf', '');
  await put(dir, 'usr/share/opq/.wh..wh..opq', '');
  await put(dir, 'usr/share/opq/c', 'only this survives\n');
  await put(dir, 'etc/app.conf', `app=${extra}\n`);
  await put(dir, `usr/share/doc/${extra}.txt`, `${extra}\n`);
  await mkdir(join(dir, 'srv'), { recursive: true });
  await chown(join(dir, 'srv'), 1000, 1000);
  await chmod(join(dir, 'srv'), 0o700);
  sh('setfattr', ['-n', 'user.dir', '-v', 'upper', join(dir, 'srv')]);
}

export interface TestImageOptions {
  version: string;
  kernel?: string;
  extra?: string;
  created?: string;
}

/** Builds the two-layer image in `work` and writes it to `layout` as tag `tag`. */
export async function writeTestImage(work: string, layout: string, tag: string, options: TestImageOptions): Promise<{ name: string; image: Image }> {
  const scratch = await Scratch.create();
  try {
    const l1 = join(work, `${tag}-l1`);
    const l2 = join(work, `${tag}-l2`);
    await rm(l1, { recursive: true, force: true });
    await rm(l2, { recursive: true, force: true });
    await baseLayer(l1, options.kernel);
    await upperLayer(l2, options.extra ?? options.version);
    const epoch = Math.floor(Date.parse(options.created ?? '2024-05-01T10:00:00Z') / 1000);
    let image = await packImage(l1, scratch, { sourceDateEpoch: epoch });
    image = await appendPath(image, scratch, l2, { sourceDateEpoch: epoch });
    image = mutateConfig(image, { labels: { 'org.opencontainers.image.version': options.version } });
    const name = `oci:${layout}:${tag}`;
    await writeImage(image, await openDestination(name));
    return { name, image };
  } finally {
    await scratch.dispose();
  }
}
