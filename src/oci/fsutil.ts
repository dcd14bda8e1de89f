import { open, rename, rm, mkdir, mkdtemp, type FileHandle } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { ioError } from './errors.js';

/** A temp path beside `path` (same filesystem, so rename is atomic). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsyncs a directory so a rename inside it survives a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  try {
    await fsyncPath(dir);
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  }
}

/** Writes `data` to `path` whole or not at all: temp file, fsync, rename, fsync dir. */
export async function writeFileAtomic(path: string, data: Buffer | string, mode = 0o644): Promise<void> {
  await writeWithHandleAtomic(path, path, (fh) => fh.writeFile(data), mode);
}

/**
 * Streams `data` to `path` whole or not at all. `check` runs after the data is on disk and
 * before the rename (for digest verification); if it throws, the temp file is removed.
 */
export async function writeStreamAtomic(path: string, data: Readable, check?: () => void | Promise<void>, mode = 0o644): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    await mkdir(dirname(path), { recursive: true });
    await pipeline(data, createWriteStream(tmp, { mode }));
    if (check) await check();
    await fsyncPath(tmp);
    await rename(tmp, path);
    await fsyncDir(dirname(path));
  } catch (e) {
    await rm(tmp, { force: true });
    throw ioError(`writing ${path}`, e);
  }
}

/** A fresh private temp directory under $TMPDIR (or `parent`). */
export async function makeTempDir(prefix: string, parent?: string): Promise<string> {
  const base = parent ?? process.env.TMPDIR ?? '/tmp';
  await mkdir(base, { recursive: true });
  return mkdtemp(join(base, `basalt-${prefix}-`));
}

/**
 * Writes `path` whole or not at all through a file handle (for writers that seek: disk
 * images): `write` fills a temp file beside it, then fsync, rename, fsync of the directory.
 * `what` names the output in errors.
 */
export async function writeWithHandleAtomic(path: string, what: string, write: (fh: FileHandle) => Promise<void>, mode = 0o644): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    await mkdir(dirname(path), { recursive: true });
    const fh = await open(tmp, 'w', mode);
    try {
      await write(fh);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await fsyncDir(dirname(path));
  } catch (e) {
    await rm(tmp, { force: true });
    throw ioError(`writing ${what}`, e);
  }
}

/** Opens a file for reading; a failure names the file (not-found, permission, ...). */
export async function openForReading(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    throw ioError(`reading ${path}`, e);
  }
}
