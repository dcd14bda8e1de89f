import { createReadStream, type BigIntStats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import type { Writable } from 'node:stream';
import { ioError } from '../errors.js';
import { readXattrsTree } from './system-tools.js';
import { TarWriter, type TarHeader } from './tar.js';

export interface PackOptions {
  /** Clamp every mtime to this (seconds), as SOURCE_DATE_EPOCH asks for reproducible builds. */
  sourceDateEpoch?: number;
  /** Record every entry as owned by 0:0 instead of its real uid/gid. */
  ownerRoot?: boolean;
  /** Read xattrs (default true; needs getfattr from the attr package, else none are recorded). */
  xattrs?: boolean;
}

export interface PackSummary {
  entries: number;
  /** Sockets are not archivable and are left out. */
  skippedSockets: string[];
  /** Whether xattrs were read ('unavailable' when getfattr is not installed). */
  xattrs: 'read' | 'unavailable' | 'disabled';
}

/**
 * Writes the contents of `dir` (not `dir` itself) as a reproducible layer tar to `out`, and
 * ends `out`: entries sorted by path in byte order, no user/group names, mtimes clamped to
 * `sourceDateEpoch`, files sharing an inode stored once plus hardlink entries, device
 * nodes with their major/minor numbers, and xattrs read by one getfattr run for the tree.
 */
export async function packDirectory(dir: string, out: Writable, options: PackOptions = {}): Promise<PackSummary> {
  const root = resolvePath(dir);
  const summary: PackSummary = { entries: 0, skippedSockets: [], xattrs: options.xattrs === false ? 'disabled' : 'read' };
  const xattrs = options.xattrs === false ? new Map<string, Map<string, Buffer>>() : await readXattrsTree(root);
  if (xattrs === undefined) summary.xattrs = 'unavailable';
  const paths = await listTree(root);
  const writer = new TarWriter(out);
  const firstPathOfInode = new Map<string, string>();
  for (const path of paths) {
    const host = join(root, path);
    const st = await lstat(host, { bigint: true }).catch((e: unknown) => {
      throw ioError(`packing ${host}`, e);
    });
    if (st.isSocket()) {
      summary.skippedSockets.push(path);
      continue;
    }
    const header = baseHeader(path, st, options);
    const attrs = xattrs?.get(host);
    if (attrs && attrs.size > 0) header.xattrs = attrs;
    if (st.isFile() && st.nlink > 1n) {
      const inode = `${st.dev}:${st.ino}`;
      const first = firstPathOfInode.get(inode);
      if (first !== undefined) {
        await writer.add({ ...header, type: 'hardlink', size: 0, linkname: first });
        summary.entries++;
        continue;
      }
      firstPathOfInode.set(inode, path);
    }
    try {
      if (st.isFile()) await writer.add({ ...header, size: Number(st.size) }, createReadStream(host));
      else if (st.isSymbolicLink()) await writer.add({ ...header, type: 'symlink', linkname: await readlink(host) });
      else await writer.add(header);
    } catch (e) {
      throw ioError(`packing ${host}`, e);
    }
    summary.entries++;
  }
  await writer.finish();
  return summary;
}

function baseHeader(path: string, st: BigIntStats, options: PackOptions): TarHeader {
  let mtime = Number(st.mtimeNs / 1_000_000_000n);
  if (options.sourceDateEpoch !== undefined && mtime > options.sourceDateEpoch) mtime = options.sourceDateEpoch;
  const header: TarHeader = {
    path,
    type: st.isDirectory() ? 'directory' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : 'file',
    mode: Number(st.mode & 0o7777n),
    uid: options.ownerRoot ? 0 : Number(st.uid),
    gid: options.ownerRoot ? 0 : Number(st.gid),
    size: 0,
    mtime,
  };
  if (header.type === 'char' || header.type === 'block') {
    // glibc's dev_t encoding: major in bits 8-19 and 44-63, minor in bits 0-7 and 20-43.
    header.devmajor = Number(((st.rdev >> 8n) & 0xfffn) | ((st.rdev >> 32n) & ~0xfffn));
    header.devminor = Number((st.rdev & 0xffn) | ((st.rdev >> 12n) & 0xffffff00n));
  }
  return header;
}

/** Every path under `root`, relative, sorted by byte order (so parents precede children). */
async function listTree(root: string): Promise<string[]> {
  const paths: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    const host = relative ? join(root, relative) : root;
    let entries;
    try {
      entries = await readdir(host, { withFileTypes: true });
    } catch (e) {
      throw ioError(`reading directory ${host}`, e);
    }
    for (const entry of entries) {
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      paths.push(path);
      if (entry.isDirectory()) await walk(path);
    }
  };
  await walk('');
  return paths.sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}
