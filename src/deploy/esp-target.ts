import { copyFile, readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ioError } from '../oci/errors.js';
import { fsyncDir, tempPathFor, writeFileAtomic } from '../oci/fsutil.js';
import { rename, mkdir, open } from 'node:fs/promises';

/**
 * Where boot entries are written: a staging directory that media code later copies into a FAT
 * image (mtools), or a mounted ESP on a device. Paths are relative to the ESP root, with `/`.
 * Every write is whole or absent (temp file + rename), so a power cut leaves old or new.
 */
export interface EspTarget {
  /** Files (not directories) under `dir`, relative to the ESP root; [] if it does not exist. */
  list(dir: string): Promise<string[]>;
  read(path: string): Promise<Buffer | undefined>;
  size(path: string): Promise<number | undefined>;
  write(path: string, content: Buffer | string): Promise<void>;
  copyFrom(path: string, sourceFile: string): Promise<void>;
  /** Removes a file, and its directory when that becomes empty. */
  remove(path: string): Promise<void>;
}

/**
 * On FAT a rename writes the new directory entry without the file's start cluster and size;
 * those reach the disk only when the file's inode is written back, which neither the file's
 * fsync before the rename nor the directory's after it forces. A power cut in between leaves
 * an empty entry (a VM test saw systemd-boot skip it and boot the old deployment). So the file
 * is synced again under its new name.
 */
async function syncRenamed(path: string): Promise<void> {
  const fh = await open(path, 'r');
  await fh.sync().finally(() => fh.close());
  await fsyncDir(dirname(path));
}

/** An EspTarget on a directory (a staging tree or a mounted ESP). */
export function directoryEsp(root: string): EspTarget {
  const host = (p: string): string => join(root, ...p.split('/'));
  const walk = async (dir: string): Promise<string[]> => {
    let entries;
    try {
      entries = await readdir(host(dir), { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw ioError(`reading ${host(dir)}`, e);
    }
    const out: string[] = [];
    for (const e of entries) {
      const rel = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory()) out.push(...(await walk(rel)));
      else out.push(rel);
    }
    return out;
  };
  return {
    list: walk,
    read: (p) => readFile(host(p)).catch(() => undefined),
    size: (p) => stat(host(p)).then((s) => s.size, () => undefined),
    write: async (p, content) => {
      await writeFileAtomic(host(p), content);
      await syncRenamed(host(p)).catch((e: unknown) => {
        throw ioError(`syncing ${host(p)}`, e);
      });
    },
    copyFrom: async (p, source) => {
      const dest = host(p);
      const tmp = tempPathFor(dest);
      try {
        await mkdir(dirname(dest), { recursive: true });
        await copyFile(source, tmp);
        const fh = await open(tmp, 'r');
        await fh.sync().finally(() => fh.close());
        await rename(tmp, dest);
        await syncRenamed(dest);
      } catch (e) {
        await rm(tmp, { force: true });
        throw ioError(`copying ${source} to ${dest}`, e);
      }
    },
    remove: async (p) => {
      try {
        await rm(host(p), { force: true });
        await rmdir(dirname(host(p))).catch(() => undefined);
      } catch (e) {
        throw ioError(`removing ${host(p)}`, e);
      }
    },
  };
}
