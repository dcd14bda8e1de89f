/**
 * Raw disk → qcow2 or vmdk, whole or not at all (temp file beside the output, fsync,
 * rename).
 */
import { BasaltError } from '../oci/errors.js';
import { writeWithHandleAtomic } from '../oci/fsutil.js';
import { writeQcow2 } from './qcow2.js';
import { writeStreamOptimizedVmdk } from './vmdk.js';

export type DiskFormat = 'qcow2' | 'vmdk';

export async function convertDisk(rawPath: string, format: DiskFormat, output: string): Promise<void> {
  if (format !== 'qcow2' && format !== 'vmdk') throw new BasaltError('usage', `unknown disk format "${String(format)}"`, { hint: 'use raw, qcow2 or vmdk' });
  await writeWithHandleAtomic(output, `${format} image ${output}`, async (fh) => {
    if (format === 'qcow2') await writeQcow2(rawPath, fh);
    else await writeStreamOptimizedVmdk(rawPath, fh, output);
  });
}
