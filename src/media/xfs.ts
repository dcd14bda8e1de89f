/**
 * An xfs root filesystem image. Unlike ext4 (`mkfs.ext4 -d`), mkfs.xfs cannot take a tree
 * with xattrs and hardlinks, so the image is loop-mounted and the tree copied in with
 * `cp -a`: this needs root and a kernel that allows loop mounts (documented in
 * docs/bootable.md; ext4 needs neither).
 */
import { mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BasaltError } from '../oci/errors.js';
import { runTool } from './run-tool.js';

export interface XfsImageOptions {
  path: string;
  sourceDir: string;
  size: number;
  /** At most 12 characters (xfs's limit). */
  label: string;
  uuid: string;
}

/** mkfs.xfs refuses filesystems under 300 MB. */
export const MIN_XFS_SIZE = 320 * 1024 * 1024;

export async function createXfsImage(options: XfsImageOptions): Promise<void> {
  const { path, sourceDir, label, uuid } = options;
  const size = Math.max(options.size, MIN_XFS_SIZE);
  if (label.length > 12) throw new BasaltError('usage', `filesystem label "${label}" is longer than xfs's 12 characters`);
  await writeFile(path, ''); // replaces an old image
  await truncate(path, size);
  try {
    await runTool('mkfs.xfs', ['-q', '-f', '-L', label, '-m', `uuid=${uuid}`, path]);
    const mountPoint = await mkdtemp(join(tmpdir(), 'basalt-xfs-'));
    try {
      const mounted = await runTool('mount', ['-o', 'loop', '-t', 'xfs', path, mountPoint], { allowFailure: true });
      if (mounted.code !== 0)
        throw new BasaltError('tool', `an xfs root needs a loop mount, and mounting ${path} failed: ${mounted.stderr.trim()}`, { hint: 'run as root on a kernel that allows loop mounts, or use --filesystem ext4 (needs neither)' });
      try {
        await runTool('cp', ['-a', `${sourceDir}/.`, `${mountPoint}/`]);
        await markDeploymentsImmutable(mountPoint);
      } finally {
        await runTool('umount', [mountPoint]);
      }
    } finally {
      await rm(mountPoint, { recursive: true, force: true });
    }
  } catch (e) {
    await rm(path, { force: true });
    throw e;
  }
}

/** cp does not copy the immutable flag ostree puts on deployment directories; set it again. */
async function markDeploymentsImmutable(root: string): Promise<void> {
  const deployRoot = join(root, 'ostree', 'deploy');
  for (const stateroot of await readdir(deployRoot).catch(() => [] as string[])) {
    const dir = join(deployRoot, stateroot, 'deploy');
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (/^[0-9a-f]{64}\.\d+$/.test(name)) await runTool('chattr', ['+i', join(dir, name)]);
    }
  }
}
