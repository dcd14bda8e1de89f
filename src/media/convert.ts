/**
 * Raw disk → qcow2 or vmdk, whole or not at all (temp file beside the output, fsync,
 * rename).
 */
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BasaltError, ioError } from '../oci/errors.js';
import { fsyncDir, tempPathFor } from '../oci/fsutil.js';
import { writeQcow2 } from './qcow2.js';
import { writeStreamOptimizedVmdk } from './vmdk.js';

export type DiskFormat = 'qcow2' | 'vmdk';

export async function convertDisk(rawPath: string, format: DiskFormat, output: string): Promise<void> {
  if (format !== 'qcow2' && format !== 'vmdk') throw new BasaltError('usage', `unknown disk format "${String(format)}"`, { hint: 'use raw, qcow2 or vmdk' });
  const tmp = tempPathFor(output);
  try {
    await mkdir(dirname(output), { recursive: true });
    const fh = await open(tmp, 'w', 0o644);
    try {
      if (format === 'qcow2') await writeQcow2(rawPath, fh);
      else await writeStreamOptimizedVmdk(rawPath, fh, output);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, output);
    await fsyncDir(dirname(output));
  } catch (e) {
    await rm(tmp, { force: true });
    throw ioError(`writing ${format} image ${output}`, e);
  }
}
