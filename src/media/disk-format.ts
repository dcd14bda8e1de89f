/** Which image format a file is, from its magic numbers (never from its name). */
import { open } from 'node:fs/promises';
import { ioError } from '../oci/errors.js';

export type ImageFormat = 'raw' | 'qcow2' | 'vmdk' | 'iso';

export async function detectImageFormat(path: string): Promise<ImageFormat> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw ioError(`opening ${path}`, e);
  }
  try {
    const head = Buffer.alloc(512);
    await fh.read(head, 0, 512, 0);
    if (head.toString('latin1', 0, 4) === 'QFI\xfb') return 'qcow2';
    if (head.toString('latin1', 0, 4) === 'KDMV' || head.toString('latin1', 0, 21) === '# Disk DescriptorFile') return 'vmdk';
    // ISO 9660: "CD001" in the primary volume descriptor at sector 16 (2 KiB sectors).
    const pvd = Buffer.alloc(6);
    await fh.read(pvd, 0, 6, 16 * 2048);
    if (pvd.toString('latin1', 1, 6) === 'CD001') return 'iso';
    return 'raw';
  } finally {
    await fh.close();
  }
}
