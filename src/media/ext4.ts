/**
 * A root filesystem image made by mkfs.ext4 -d from a directory tree: no loop device, no
 * mount. Identifiers and times come from the options so equal inputs give equal images.
 */
import { rm } from 'node:fs/promises';
import { BasaltError } from '../oci/errors.js';
import { runTool } from './run-tool.js';
import { measureTree } from './tree-size.js';
import { MiB, alignUp, formatBytes } from './sizes.js';

export interface Ext4ImageOptions {
  path: string;
  sourceDir: string;
  size: number;
  label: string;
  /** The filesystem UUID (root=UUID=…). */
  uuid: string;
  /** Seeds directory hashing, which mkfs otherwise draws at random. */
  hashSeed: string;
  sourceDateEpoch?: number;
  /** True when the size came from the user, so a misfit is their input to fix. */
  sizeFromUser?: boolean;
  /**
   * Make the filesystem inside `path` (a disk or block device) starting at this byte, instead
   * of `path` being the filesystem image (mke2fs -E offset=). `path` is then left in place.
   */
  offset?: number;
}

const BYTES_PER_INODE = 16384; // mke2fs.conf's default inode_ratio
const RESERVED_FRACTION = 0.05; // mke2fs's default -m 5

/**
 * A size that holds the tree with room to spare: content plus 20 %, the journal, the inode
 * tables mkfs sizes by ratio, and the blocks reserved for root.
 */
export async function estimateExt4Size(sourceDir: string): Promise<number> {
  const { bytes, inodes } = await measureTree(sourceDir, 4096);
  const journal = 64 * MiB;
  const overhead = RESERVED_FRACTION + 256 / BYTES_PER_INODE + 0.02; // reserved, inode tables, bitmaps and group descriptors
  const bySpace = (bytes * 1.2 + journal + 32 * MiB) / (1 - overhead);
  const byInodes = inodes * BYTES_PER_INODE * 1.3;
  return alignUp(Math.ceil(Math.max(bySpace, byInodes, 128 * MiB)), MiB);
}

export async function createExt4Image(options: Ext4ImageOptions): Promise<void> {
  const { path, sourceDir, size, label } = options;
  if (label.length > 16) throw new BasaltError('usage', `filesystem label "${label}" is longer than ext4's 16 characters`);
  if (options.offset === undefined) await rm(path, { force: true });
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Read by e2fsprogs for every time it would take from the clock (superblock, root dir).
  if (options.sourceDateEpoch !== undefined) env.E2FSPROGS_FAKE_TIME = String(options.sourceDateEpoch);
  const args = ['-q', '-t', 'ext4', '-d', sourceDir, '-L', label, '-U', options.uuid, '-E', `hash_seed=${options.hashSeed},root_owner=0:0${options.offset === undefined ? '' : `,offset=${options.offset}`}`, path, `${Math.floor(size / 1024)}k`];
  const result = await runTool('mkfs.ext4', args, { env, allowFailure: true });
  if (result.code === 0) return;
  if (options.offset === undefined) await rm(path, { force: true });
  const why = (result.stderr || result.stdout).trim();
  if (/could not allocate|no free space|no space left|not enough space/i.test(why)) {
    const tree = await measureTree(sourceDir).catch(() => undefined);
    const needs = tree ? ` (the tree holds ${formatBytes(tree.bytes)} in ${tree.inodes} files)` : '';
    throw new BasaltError(options.sizeFromUser ? 'usage' : 'io', `${sourceDir} does not fit in a ${formatBytes(size)} ext4 filesystem${needs}`, {
      hint: options.sizeFromUser ? 'give a larger root size' : 'the size estimate was too small; give a root size explicitly',
    });
  }
  throw new BasaltError('tool', `mkfs.ext4 -d ${sourceDir} failed: ${why}`);
}
