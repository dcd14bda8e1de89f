import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ioError } from '../oci/errors.js';
import { openUncompressed, type Image } from '../oci/image.js';
import { exportFlattened } from '../oci/layer/export.js';
import { readTar, type TarEntryType } from '../oci/layer/tar.js';

/**
 * A root filesystem as an index of paths, types and sizes — what the lints look at — read
 * from a directory or from an image's flattened layers without unpacking anything. Only
 * small configuration files the lints parse (passwd, kargs.d, sysusers.d, tmpfiles.d) are
 * kept in memory.
 */
export interface TreeEntry {
  type: TarEntryType;
  size: number;
  uid: number;
  gid: number;
  /** Symlink target. */
  linkname?: string;
}

export interface RootTree {
  /** Where it came from, for messages: `image NAME` or `directory DIR`. */
  readonly source: string;
  /** Paths relative to the root, no leading slash, `/`-separated; the root itself is absent. */
  readonly entries: ReadonlyMap<string, TreeEntry>;
  /** Contents of the small files `wantsContent` selected. */
  readonly contents: ReadonlyMap<string, Buffer>;
  /** Paths whose name (or symlink target) is not valid UTF-8, shown with \xNN escapes. */
  readonly nonUtf8: readonly string[];
}

/** Files whose content the lints read; nothing else is kept. */
const CONTENT_LIMIT = 1 << 20;
export function wantsContent(path: string): boolean {
  return (
    /^(usr\/)?etc\/(passwd|group)$/.test(path) ||
    /^usr\/lib\/bootc\/kargs\.d\/[^/]+\.toml$/.test(path) ||
    /^(usr\/lib|etc)\/(sysusers|tmpfiles)\.d\/[^/]+\.conf$/.test(path)
  );
}

/** Builds a tree from an image: one streaming pass over the flattened layers. */
export async function treeFromImage(image: Image, name: string): Promise<RootTree> {
  const tar = new PassThrough({ highWaterMark: 1 << 20 });
  const exporting = exportFlattened(image.layers.map((l) => () => openUncompressed(l)), tar, { what: `layer of ${name}` });
  exporting.catch((e: unknown) => tar.destroy(e as Error));
  const entries = new Map<string, TreeEntry>();
  const contents = new Map<string, Buffer>();
  const nonUtf8: string[] = [];
  for await (const entry of readTar(tar, name)) {
    const path = entry.path.replace(/^\.?\/+/, '').replace(/\/+$/, '');
    if (path === '' || path === '.') continue;
    // The tar reader decodes names as UTF-8; bytes that are not become U+FFFD.
    if (path.includes('\uFFFD') || entry.linkname?.includes('\uFFFD')) nonUtf8.push(path);
    const e: TreeEntry = { type: entry.type, size: entry.size, uid: entry.uid, gid: entry.gid };
    if (entry.type === 'symlink' && entry.linkname !== undefined) e.linkname = entry.linkname;
    entries.set(path, e);
    if (entry.type === 'file' && entry.size <= CONTENT_LIMIT && wantsContent(path)) {
      const chunks: Buffer[] = [];
      for await (const c of entry.body) chunks.push(c as Buffer);
      contents.set(path, Buffer.concat(chunks));
    }
  }
  await exporting;
  return { source: `image ${name}`, entries, contents, nonUtf8 };
}

function isUtf8(name: Buffer): boolean {
  return Buffer.from(name.toString('utf8'), 'utf8').equals(name);
}

function escapeBytes(name: Buffer): string {
  let out = '';
  for (const b of name) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}

/** Builds a tree from a directory (lstat only; never follows symlinks). */
export async function treeFromDirectory(dir: string): Promise<RootTree> {
  const entries = new Map<string, TreeEntry>();
  const contents = new Map<string, Buffer>();
  const nonUtf8: string[] = [];
  const walk = async (relative: string, hostDir: Buffer): Promise<void> => {
    let names: Buffer[];
    try {
      names = await readdir(hostDir, { encoding: 'buffer' });
    } catch (e) {
      throw ioError(`reading directory ${hostDir.toString()}`, e);
    }
    for (const raw of names.sort(Buffer.compare)) {
      const hostPath = Buffer.concat([hostDir, Buffer.from('/'), raw]);
      const shown = isUtf8(raw) ? raw.toString('utf8') : escapeBytes(raw);
      const path = relative ? `${relative}/${shown}` : shown;
      if (!isUtf8(raw)) nonUtf8.push(path);
      const st = await lstat(hostPath).catch((e: unknown) => {
        throw ioError(`reading ${join(dir, path)}`, e);
      });
      const type: TarEntryType = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : 'file';
      const entry: TreeEntry = { type, size: st.isFile() ? st.size : 0, uid: st.uid, gid: st.gid };
      if (type === 'symlink') {
        const target = (await readlink(hostPath, { encoding: 'buffer' })) as Buffer;
        if (!isUtf8(target) && isUtf8(raw)) nonUtf8.push(path);
        entry.linkname = target.toString('utf8');
      }
      entries.set(path, entry);
      if (type === 'file' && st.size <= CONTENT_LIMIT && wantsContent(path)) {
        const fh = await open(hostPath, 'r');
        try {
          contents.set(path, await fh.readFile());
        } finally {
          await fh.close();
        }
      }
      if (type === 'directory') await walk(path, hostPath);
    }
  };
  await walk('', Buffer.from(dir));
  return { source: `directory ${dir}`, entries, contents, nonUtf8 };
}
