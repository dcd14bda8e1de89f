/**
 * Shared by the archive transports (oci-archive, docker-archive): an archive is indexed once
 * with the tar reader, recording where each file's data lies, and then served by random access
 * (fs.createReadStream start/end), so nothing is extracted and no blob is held in memory.
 * Writing streams a tar into a temp file beside the target and renames it over the target on
 * commit, so the target appears whole or not at all.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { dirname, posix } from 'node:path';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BasaltError, ioError } from '../errors.js';
import { fsyncDir, makeTempDir, tempPathFor } from '../fsutil.js';
import { readTar, TarWriter, type TarEntryType } from '../layer/tar.js';
import { decompressStream, detectCompression } from '../layer/compression.js';
import type { Compression } from '../media-types.js';
import type { LayoutFiles } from './oci-layout.js';

export interface IndexedEntry {
  type: TarEntryType;
  dataOffset: number;
  size: number;
  linkname: string | undefined;
}

/** Entry names as lookups use them: no leading `./` or `/`, no trailing `/`, normalised. */
export function normaliseEntryName(name: string): string {
  const n = posix.normalize(name.replace(/^\/+/, '')).replace(/\/+$/, '');
  return n === '.' ? '' : n.replace(/^\.\//, '');
}

/**
 * A path an archive's own metadata names (manifest.json's Config and Layers). It must stay
 * inside the archive: absolute paths and `..` are refused, not looked up.
 */
export function safeMemberPath(name: unknown, what: string): string {
  if (typeof name !== 'string' || name === '') throw new BasaltError('invalid', `${what}: expected a file name, got ${JSON.stringify(name)}`);
  const n = normaliseEntryName(name);
  if (name.startsWith('/') || n === '' || n === '..' || n.startsWith('../') || name.split('/').includes('..'))
    throw new BasaltError('unsafe', `${what}: "${name}" points outside the archive`, { hint: 'the archive is malformed or hostile; do not use it' });
  return n;
}

/** An archive file indexed for random access. */
export class IndexedArchive implements LayoutFiles {
  readonly description: string;

  private constructor(
    /** The uncompressed tar actually read (a temp file when the archive was compressed). */
    private readonly tarPath: string,
    private readonly entries: Map<string, IndexedEntry>,
    readonly compression: Compression,
    private readonly tempDir: string | undefined,
    displayPath: string,
  ) {
    this.description = `archive ${displayPath}`;
  }

  /**
   * Indexes `path`. An uncompressed tar is read in place. A compressed one (a gzip'd
   * `docker save` or oci-archive) has no random access, so it is first decompressed to a temp
   * file, which close() removes — containers/image extracts such archives to a temp dir too.
   */
  static async open(path: string): Promise<IndexedArchive> {
    const head = await readRange(path, 0, 4).catch((e: unknown) => {
      throw ioError(`archive ${path}`, e);
    });
    const compression = detectCompression(head);
    let tarPath = path;
    let tempDir: string | undefined;
    try {
      if (compression !== 'none') {
        tempDir = await makeTempDir('archive');
        tarPath = `${tempDir}/archive.tar`;
        await pipeline(createReadStream(path), decompressStream(compression), createWriteStream(tarPath));
      }
      const entries = new Map<string, IndexedEntry>();
      const what = `archive ${path}`;
      for await (const e of readTar(createReadStream(tarPath), what)) {
        const name = normaliseEntryName(e.path);
        if (name === '') continue;
        entries.set(name, { type: e.type, dataOffset: e.dataOffset, size: e.type === 'file' ? e.size : 0, linkname: e.linkname });
      }
      const { size: fileSize } = await stat(tarPath);
      for (const [name, e] of entries)
        if (e.dataOffset + e.size > fileSize) throw new BasaltError('integrity', `${what}: "${name}" extends past the end of the file (truncated archive)`, { hint: 'the archive is incomplete; write or download it again' });
      return new IndexedArchive(tarPath, entries, compression, tempDir, path);
    } catch (e) {
      if (tempDir) await rm(tempDir, { recursive: true, force: true });
      if (e instanceof BasaltError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR' || /unexpected end|incorrect header|premature/i.test((e as Error).message ?? ''))
        throw new BasaltError('integrity', `archive ${path}: the ${compression} stream is corrupt or truncated`, { hint: 'write or download the archive again', cause: e });
      throw ioError(`archive ${path}`, e);
    }
  }

  /** The regular file `name` resolves to, following symlinks and hardlinks inside the archive. */
  resolve(name: string): { name: string; entry: IndexedEntry } | undefined {
    let current = normaliseEntryName(name);
    for (let hops = 0; hops < 16; hops++) {
      const e = this.entries.get(current);
      if (!e) return undefined;
      if (e.type === 'file') return { name: current, entry: e };
      if (e.linkname === undefined || (e.type !== 'symlink' && e.type !== 'hardlink')) return undefined;
      const target = e.type === 'symlink' ? posix.join(posix.dirname(current), e.linkname) : e.linkname;
      if (target.startsWith('/') || normaliseEntryName(target).startsWith('../')) return undefined;
      current = normaliseEntryName(target);
    }
    return undefined;
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  private lookup(relPath: string): IndexedEntry {
    const found = this.resolve(relPath);
    if (!found) throw new BasaltError('not-found', `${this.description}: no file ${relPath} in the archive`);
    return found.entry;
  }

  sizeOf(relPath: string): number {
    return this.lookup(relPath).size;
  }

  async read(relPath: string, maxBytes: number): Promise<Buffer> {
    const e = this.lookup(relPath);
    if (e.size > maxBytes) throw new BasaltError('invalid', `${this.description}: ${relPath} is ${e.size} bytes, over the ${maxBytes}-byte limit for this file`);
    return readRange(this.tarPath, e.dataOffset, e.size);
  }

  async open(relPath: string, offset: number): Promise<Readable> {
    const e = this.lookup(relPath);
    if (offset >= e.size) return Readable.from([]);
    return createReadStream(this.tarPath, { start: e.dataOffset + offset, end: e.dataOffset + e.size - 1, highWaterMark: 1 << 20 });
  }

  /** The first bytes of a member (to sniff its compression). */
  async head(relPath: string, n: number): Promise<Buffer> {
    const e = this.lookup(relPath);
    return readRange(this.tarPath, e.dataOffset, Math.min(n, e.size));
  }

  async close(): Promise<void> {
    if (this.tempDir) await rm(this.tempDir, { recursive: true, force: true });
  }
}

async function readRange(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}

/** mtime for entries basalt writes: SOURCE_DATE_EPOCH when set, so outputs are reproducible. */
export function archiveMtime(): number {
  const epoch = Number(process.env.SOURCE_DATE_EPOCH);
  return Number.isFinite(epoch) && epoch >= 0 ? Math.floor(epoch) : 0;
}

/**
 * A tar being written to a temp file beside `target`. Once any entry fails half-way the tar
 * is unusable, so the writer remembers the failure and refuses further work until abort().
 */
export class ArchiveWriter {
  private out: WriteStream | undefined;
  private tar: TarWriter | undefined;
  private readonly tempPath: string;
  private readonly spools = new Set<string>();
  private broken: unknown;
  private readonly dirs = new Set<string>();

  constructor(readonly target: string, private readonly what: string) {
    this.tempPath = tempPathFor(target);
  }

  private async writer(): Promise<TarWriter> {
    if (this.broken !== undefined) throw this.broken;
    if (!this.tar) {
      const st = await stat(this.target).catch(() => undefined);
      if (st?.isDirectory()) throw new BasaltError('usage', `${this.what}: ${this.target} is a directory`, { hint: 'name an archive file' });
      const out = createWriteStream(this.tempPath, { flags: 'wx', mode: 0o644 });
      await new Promise<void>((resolve, reject) => {
        out.once('open', () => resolve());
        out.once('error', (e) => reject(ioError(`${this.what}: creating ${this.tempPath}`, e)));
      });
      this.out = out;
      this.tar = new TarWriter(out);
    }
    return this.tar;
  }

  /** Adds parent directory entries for `path` once each, as `tar` of a directory would have them. */
  private async ensureParents(path: string): Promise<void> {
    const parts = path.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (this.dirs.has(dir)) continue;
      this.dirs.add(dir);
      await this.guard(async (tar) => tar.add({ path: dir, type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: archiveMtime() }));
    }
  }

  private async guard(fn: (tar: TarWriter) => Promise<void>): Promise<void> {
    const tar = await this.writer();
    try {
      await fn(tar);
    } catch (e) {
      this.broken = e;
      throw e;
    }
  }

  /** Appends a regular file of exactly `size` bytes. */
  async addFile(path: string, size: number, body: Readable | Buffer): Promise<void> {
    await this.ensureParents(path);
    await this.guard(async (tar) => tar.add({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtime: archiveMtime() }, body));
  }

  /**
   * Spools a stream whose size is not known yet into a temp file beside the target (same
   * filesystem as the output), through `transforms`. The caller adds it and calls dropSpool.
   */
  async spool(data: Readable, transforms: Transform[]): Promise<string> {
    if (this.broken !== undefined) throw this.broken;
    const path = tempPathFor(`${this.target}.blob`);
    this.spools.add(path);
    try {
      await pipeline([data, ...transforms, createWriteStream(path, { flags: 'wx', mode: 0o600 })]);
    } catch (e) {
      await this.dropSpool(path);
      throw ioError(`${this.what}: spooling a blob next to ${this.target}`, e);
    }
    return path;
  }

  async dropSpool(path: string): Promise<void> {
    this.spools.delete(path);
    await rm(path, { force: true });
  }

  /** Ends the tar, fsyncs it and renames it over the target. */
  async commit(): Promise<void> {
    const tar = await this.writer();
    try {
      await tar.finish();
      await new Promise<void>((resolve) => (this.out?.closed ? resolve() : this.out?.once('close', () => resolve())));
      const fh = await open(this.tempPath, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(this.tempPath, this.target);
      await fsyncDir(dirname(this.target));
    } catch (e) {
      this.broken = e;
      throw ioError(`${this.what}: writing ${this.target}`, e);
    }
    this.tar = undefined;
    this.out = undefined;
  }

  async abort(): Promise<void> {
    if (this.out) {
      const out = this.out;
      await new Promise<void>((resolve) => {
        if (out.closed) return resolve();
        out.once('close', () => resolve());
        out.destroy();
      });
    }
    this.out = undefined;
    this.tar = undefined;
    this.broken ??= new Error(`${this.what}: aborted`);
    await rm(this.tempPath, { force: true });
    for (const s of [...this.spools]) await this.dropSpool(s);
  }
}

/** A whole small stream in memory, refusing more than `limit` bytes. */
export async function readAllLimited(data: Readable, limit: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of data) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    n += b.length;
    if (n > limit) {
      data.destroy();
      throw new BasaltError('invalid', `${what}: more than ${limit} bytes, too large for this kind of blob`);
    }
    parts.push(b);
  }
  return Buffer.concat(parts, n);
}
