/**
 * Copies a filesystem image into a disk image at an offset, skipping all-zero blocks so a
 * sparse disk stays sparse (what `dd conv=notrunc,sparse` does). The destination range must
 * read as zeros already — true for a freshly truncated disk file, which is how basalt
 * builds disks.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { BasaltError, ioError } from '../oci/errors.js';
import { MiB } from './sizes.js';

const BLOCK = MiB;

const ZEROS = Buffer.alloc(BLOCK);

/** Whether `buf` holds only zero bytes (a native memcmp against a zero block). */
export function isAllZero(buf: Buffer): boolean {
  for (let at = 0; at < buf.length; at += ZEROS.length) {
    const part = buf.subarray(at, Math.min(buf.length, at + ZEROS.length));
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}

export interface PlaceResult {
  /** Bytes actually written (non-zero blocks). */
  written: number;
  /** Size of the source image. */
  size: number;
}

/** Writes `sourcePath` into `dest` at `offset`; refuses a source larger than `room`. */
export async function placeImage(sourcePath: string, dest: FileHandle, offset: number, room: number): Promise<PlaceResult> {
  let src: FileHandle;
  try {
    src = await open(sourcePath, 'r');
  } catch (e) {
    throw ioError(`reading ${sourcePath}`, e);
  }
  try {
    const size = (await src.stat()).size;
    if (size > room) throw new BasaltError('usage', `${sourcePath} is ${size} bytes, larger than its ${room}-byte partition`);
    const buf = Buffer.alloc(BLOCK);
    let written = 0;
    for (let pos = 0; pos < size; pos += BLOCK) {
      const { bytesRead } = await src.read(buf, 0, Math.min(BLOCK, size - pos), pos);
      const chunk = buf.subarray(0, bytesRead);
      if (isAllZero(chunk)) continue;
      await writeFully(dest, chunk, offset + pos);
      written += bytesRead;
    }
    return { written, size };
  } finally {
    await src.close();
  }
}

export async function writeFully(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}
