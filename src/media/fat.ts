/**
 * The EFI system partition as a FAT32 image file, made with dosfstools and filled from a
 * staging directory with mtools — no loop device, no mount.
 */
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError, ioError } from '../oci/errors.js';
import { runTool } from './run-tool.js';
import { measureTree } from './tree-size.js';
import { MiB, alignUp, formatBytes } from './sizes.js';

/** FAT32 needs 65525 clusters; with 512-byte clusters that is about 33 MiB, so stay above it. */
export const MIN_ESP_SIZE = 64 * MiB;
/** bootc-image-builder's ESP is 501 MiB; a round 512 MiB leaves room for several kernels. */
export const DEFAULT_ESP_SIZE = 512 * MiB;

export interface FatImageOptions {
  /** The image file to create (replaced if it exists). */
  path: string;
  /** Directory whose contents become the filesystem's root. */
  sourceDir: string;
  size: number;
  /** 8 hex digits; makes the filesystem's serial number reproducible. */
  volumeId: string;
  label?: string;
  /** Seconds since the epoch for timestamps mtools would take from the clock. */
  sourceDateEpoch?: number;
}

/** The size an ESP needs for `sourceDir`: its content plus half again, at least the minimum. */
export async function estimateEspSize(sourceDir: string): Promise<number> {
  const { bytes, inodes } = await measureTree(sourceDir, 4096);
  return Math.max(MIN_ESP_SIZE, alignUp(Math.ceil(bytes * 1.5) + inodes * 4096 + 16 * MiB, MiB));
}

function mtoolsEnv(epoch: number | undefined): NodeJS.ProcessEnv {
  // MTOOLS_SKIP_CHECK: our fresh image has no partition table for mtools to sanity-check.
  return { ...process.env, MTOOLS_SKIP_CHECK: '1', ...(epoch === undefined ? {} : { SOURCE_DATE_EPOCH: String(epoch) }) };
}

export async function createFatImage(options: FatImageOptions): Promise<void> {
  const { path, sourceDir, size } = options;
  if (!/^[0-9a-fA-F]{8}$/.test(options.volumeId)) throw new BasaltError('invalid', `FAT volume id "${options.volumeId}" is not 8 hex digits`);
  if (size < MIN_ESP_SIZE) throw new BasaltError('usage', `an ESP of ${formatBytes(size)} is too small for FAT32`, { hint: `give at least ${formatBytes(MIN_ESP_SIZE)}` });
  let entries: string[];
  try {
    entries = (await readdir(sourceDir)).sort();
  } catch (e) {
    throw ioError(`reading the ESP staging directory ${sourceDir}`, e);
  }
  await rm(path, { force: true });
  const label = (options.label ?? 'EFI-SYSTEM').toUpperCase().slice(0, 11);
  // --invariant fixes what mkfs.fat would take from the clock; -i then sets our serial.
  await runTool('mkfs.vfat', ['-F', '32', '--invariant', '-i', options.volumeId, '-n', label, '-C', path, String(Math.floor(size / 1024))]);
  if (entries.length === 0) return;
  // -s recursive, -p keep attributes, -m keep modification times, -Q stop at the first error.
  const result = await runTool('mcopy', ['-i', path, '-s', '-p', '-m', '-Q', ...entries.map((e) => join(sourceDir, e)), '::/'], {
    env: mtoolsEnv(options.sourceDateEpoch),
    allowFailure: true,
  });
  if (result.code !== 0) {
    const why = (result.stderr || result.stdout).trim();
    if (/disk full|no free|no space/i.test(why))
      throw new BasaltError('usage', `the ESP contents of ${sourceDir} do not fit in ${formatBytes(size)}`, { hint: 'give a larger ESP size' });
    throw new BasaltError('tool', `mcopy of ${sourceDir} into the ESP image failed: ${why}`);
  }
}

/** A file inside a FAT image, or undefined when the image has no such file (mtools, no mount). */
export async function readFatFile(image: string, path: string, scratchDir: string): Promise<Buffer | undefined> {
  const out = join(scratchDir, `fat-read-${Date.now()}-${Math.random().toString(16).slice(2)}`);
  const result = await runTool('mcopy', ['-n', '-i', image, `::${path}`, out], { env: mtoolsEnv(undefined), allowFailure: true });
  if (result.code !== 0) return undefined;
  try {
    return await readFile(out);
  } finally {
    await rm(out, { force: true });
  }
}

/**
 * Replaces (or creates) a file inside a FAT image of fixed size. Returns false when the
 * filesystem has no room for it; the image is then unchanged in every other file.
 */
export async function writeFatFile(image: string, path: string, data: Buffer, scratchDir: string): Promise<boolean> {
  const src = join(scratchDir, `fat-write-${Date.now()}-${Math.random().toString(16).slice(2)}`);
  await writeFile(src, data);
  try {
    const result = await runTool('mcopy', ['-o', '-i', image, src, `::${path}`], { env: mtoolsEnv(undefined), allowFailure: true });
    if (result.code === 0) return true;
    const why = (result.stderr || result.stdout).trim();
    if (/disk full|no free|no space/i.test(why)) return false;
    throw new BasaltError('tool', `mcopy into the FAT image ${image} failed: ${why}`);
  } finally {
    await rm(src, { force: true });
  }
}

/**
 * Copies every file of the FAT image `from` into a new, larger FAT image `to` of `size`
 * bytes (FAT12/16/32 as mkfs.fat picks for the size), keeping the volume label.
 */
export async function growFatImage(from: string, to: string, size: number, scratchDir: string): Promise<void> {
  const tree = join(scratchDir, `fat-tree-${Date.now()}`);
  await mkdir(tree, { recursive: true });
  try {
    const env = mtoolsEnv(undefined);
    await runTool('mcopy', ['-s', '-p', '-m', '-n', '-i', from, '::/*', `${tree}/`], { env });
    const label = /Volume label is (.+)$/m.exec((await runTool('mlabel', ['-i', from, '-s', '::'], { env, allowFailure: true })).stdout)?.[1]?.trim();
    await rm(to, { force: true });
    // --invariant: no clock or random serial, so a remaster stays reproducible.
    await runTool('mkfs.vfat', ['--invariant', ...(label ? ['-n', label.slice(0, 11)] : []), '-C', to, String(Math.floor(size / 1024))]);
    const entries = (await readdir(tree)).sort();
    if (entries.length) await runTool('mcopy', ['-s', '-p', '-m', '-Q', '-i', to, ...entries.map((e) => join(tree, e)), '::/'], { env });
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}
