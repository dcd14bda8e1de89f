import { stat } from 'node:fs/promises';
import { ioError } from '../oci/errors.js';

/** A file's size in bytes, with an error naming the file. */
export async function statSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (e) {
    throw ioError(`reading the size of ${path}`, e);
  }
}
