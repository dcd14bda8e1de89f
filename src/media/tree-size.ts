/**
 * How much a directory tree will take in a filesystem: block-rounded apparent sizes and an
 * inode count, counting hard-linked files once. Used to size root and ESP images.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ioError } from '../oci/errors.js';

export interface TreeSize {
  /** Bytes of file, directory and long-symlink data, each rounded up to `blockSize`. */
  bytes: number;
  /** Files, directories, links and special files. */
  inodes: number;
}

export async function measureTree(root: string, blockSize = 4096): Promise<TreeSize> {
  const seen = new Set<string>();
  let bytes = 0;
  let inodes = 0;
  const roundUp = (n: number): number => Math.ceil(n / blockSize) * blockSize;
  const visit = async (path: string): Promise<void> => {
    let st;
    try {
      st = await lstat(path);
    } catch (e) {
      throw ioError(`measuring ${path}`, e);
    }
    if (st.nlink > 1 && !st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) return;
      seen.add(key);
    }
    inodes++;
    if (st.isDirectory()) {
      const names = await readdir(path);
      bytes += roundUp(Math.max(1, names.length) * 32);
      for (const name of names) await visit(join(path, name));
    } else if (st.isFile()) bytes += roundUp(st.size);
    else if (st.isSymbolicLink() && st.size > 60) bytes += blockSize; // short targets live in the inode
  };
  await visit(root);
  return { bytes, inodes };
}
