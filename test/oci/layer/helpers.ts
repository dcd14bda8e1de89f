/** Shared helpers for the layer tests: building tars in memory and describing trees. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { readTar, TarWriter, type TarHeader } from '../../../src/oci/layer/tar.js';
import { readXattrsTree } from '../../../src/oci/layer/system-tools.js';

export async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(parts);
}

export interface Spec extends Partial<TarHeader> {
  path: string;
  data?: string | Buffer;
}

/** A tar built by our writer from short specs (files by default, mode 0644, mtime 1e9). */
export async function makeTar(specs: Spec[]): Promise<Buffer> {
  const out = new PassThrough();
  const done = collect(out);
  const writer = new TarWriter(out);
  for (const spec of specs) {
    const { data, ...rest } = spec;
    const body = data === undefined ? undefined : Buffer.isBuffer(data) ? data : Buffer.from(data);
    const type = rest.type ?? 'file';
    const header: TarHeader = { mode: type === 'directory' ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 1e9, ...rest, type, size: body?.length ?? 0 };
    await writer.add(header, body);
  }
  await writer.finish();
  return done;
}

export interface ReadEntry extends TarHeader {
  data: Buffer;
  dataOffset: number;
}

export async function readAll(tar: Buffer | Readable, what = 'test tar'): Promise<ReadEntry[]> {
  const entries: ReadEntry[] = [];
  for await (const entry of readTar(Buffer.isBuffer(tar) ? Readable.from([tar]) : tar, what)) {
    const { body, ...header } = entry;
    entries.push({ ...header, data: await collect(body) });
  }
  return entries;
}

export interface NodeFacts {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  sha256?: string;
  link?: string;
  rdev?: string;
  xattrs?: Record<string, string>;
}

/** Path → facts for everything below `dir` (not `dir` itself), for comparing trees. */
export async function describeTree(dir: string, options: { xattrs?: boolean; skip?: (path: string) => boolean } = {}): Promise<Map<string, NodeFacts>> {
  const xattrs = options.xattrs === false ? undefined : await readXattrsTree(dir);
  const result = new Map<string, NodeFacts>();
  const walk = async (relative: string): Promise<void> => {
    for (const name of (await readdir(join(dir, relative))).sort()) {
      const path = relative ? `${relative}/${name}` : name;
      if (options.skip?.(path)) continue;
      const host = join(dir, path);
      const st = await lstat(host);
      const type = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : 'other';
      const facts: NodeFacts = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: type === 'file' ? st.size : 0 };
      if (type === 'symlink') {
        facts.link = await readlink(host);
        facts.mode = 0;
      }
      if (type === 'file') facts.sha256 = await sha256File(host);
      if (type === 'char' || type === 'block') facts.rdev = String(st.rdev);
      const attrs = xattrs?.get(host);
      if (attrs && attrs.size > 0) facts.xattrs = Object.fromEntries([...attrs].sort().map(([k, v]) => [k, v.toString('hex')]));
      result.set(path, facts);
      if (type === 'directory') await walk(path);
    }
  };
  await walk('');
  return result;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Facts of a tar's entries (last occurrence wins), keyed by normalised path. */
export async function describeTar(tar: Buffer | Readable): Promise<Map<string, NodeFacts>> {
  const result = new Map<string, NodeFacts>();
  for (const e of await readAll(tar)) {
    const path = e.path.replace(/^(\.\/|\/)+/, '');
    if (path === '' || path === '.') continue;
    const facts: NodeFacts = { type: e.type, mode: e.type === 'symlink' ? 0 : e.mode, uid: e.uid, gid: e.gid, size: e.size };
    if (e.type === 'file') facts.sha256 = sha256(e.data);
    if (e.linkname !== undefined) facts.link = e.linkname;
    if (e.xattrs && e.xattrs.size > 0) facts.xattrs = Object.fromEntries([...e.xattrs].sort().map(([k, v]) => [k, v.toString('hex')]));
    result.set(path, facts);
  }
  return result;
}
