import { Readable } from 'node:stream';
import { BasaltError } from '../errors.js';
import { ByteSource } from './byte-source.js';
import { BLOCK, F, checksumMatches, headerFormat, isZeroBlock, numericField, parsePaxRecords, rawField, stringField } from './tar-format.js';
import type { TarEntry, TarEntryType, TarHeader } from './tar-types.js';

/** PAX headers and GNU long names are held in memory; anything larger is not a real archive. */
const MAX_META_BYTES = 16 * 1024 * 1024;
const BODY_CHUNK = 256 * 1024;

/**
 * Reads a tar stream (v7, ustar, PAX, GNU) entry by entry. Bodies are streamed straight from
 * the input with backpressure; an archive is never held in memory. After the end-of-archive
 * blocks the rest of the input is drained, so an upstream digest check sees every byte.
 * An input that ends exactly between entries without end-of-archive blocks is accepted (as
 * Go's archive/tar does); one that ends inside a header or body is an 'integrity' error.
 */
export async function* readTar(input: Readable, what: string): AsyncGenerator<TarEntry> {
  const source = new ByteSource(input);
  const globalPax = new Map<string, Buffer>();
  let body: EntryBody | undefined;
  let completed = false;
  try {
    for (;;) {
      if (body) await body.finish();
      body = undefined;
      const next = await readHeader(source, globalPax, what);
      if (next === undefined) {
        await source.drain();
        completed = true;
        return;
      }
      const { header, dataSize } = next;
      const dataOffset = source.position;
      body = new EntryBody(source, dataSize, what, header.path);
      yield { ...header, body: body.stream, dataOffset };
    }
  } finally {
    if (!completed) await source.close();
  }
}

function truncated(what: string, detail: string): BasaltError {
  return new BasaltError('integrity', `${what}: truncated tar stream (${detail})`, { hint: 'the layer is incomplete or corrupt; fetch it again' });
}

/** The data of one entry as a Readable that pulls from the source only when read. */
class EntryBody {
  readonly stream: Readable;
  private remaining: number;
  private inFlight: Promise<void> | undefined;
  private failure: unknown;

  constructor(private readonly source: ByteSource, private readonly size: number, private readonly what: string, private readonly path: string) {
    this.remaining = size;
    this.stream = new Readable({ highWaterMark: 64 * 1024, read: () => this.pull() });
  }

  private pull(): void {
    if (this.remaining === 0) {
      this.stream.push(null);
      return;
    }
    this.inFlight = this.source.chunk(Math.min(this.remaining, BODY_CHUNK)).then(
      (data) => {
        this.inFlight = undefined;
        if (data === null) {
          this.failure = truncated(this.what, `entry "${this.path}" ends ${this.remaining} bytes early`);
          this.stream.destroy(this.failure as Error);
          return;
        }
        this.remaining -= data.length;
        if (this.stream.destroyed) return;
        this.stream.push(data);
        if (this.remaining === 0) this.stream.push(null);
      },
      (err: unknown) => {
        this.inFlight = undefined;
        this.failure = err;
        this.stream.destroy(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  /** Skips whatever the consumer left unread, then the padding to the next block. */
  async finish(): Promise<void> {
    if (this.inFlight) await this.inFlight;
    if (this.failure !== undefined) throw this.failure;
    if (this.remaining > 0) {
      if (!this.stream.destroyed) this.stream.destroy();
      const skipped = await this.source.skip(this.remaining);
      if (skipped < this.remaining) throw truncated(this.what, `entry "${this.path}" ends ${this.remaining - skipped} bytes early`);
      this.remaining = 0;
    }
    const padding = (BLOCK - (this.size % BLOCK)) % BLOCK;
    if ((await this.source.skip(padding)) < padding) throw truncated(this.what, `padding after entry "${this.path}" is missing`);
  }
}

interface ParsedHeader {
  header: TarHeader;
  dataSize: number;
}

/** Reads header blocks, absorbing PAX and GNU long-name meta entries, up to the next real entry. */
async function readHeader(source: ByteSource, globalPax: Map<string, Buffer>, what: string): Promise<ParsedHeader | undefined> {
  let localPax: Map<string, Buffer> | undefined;
  let longName: Buffer | undefined;
  let longLink: Buffer | undefined;
  for (;;) {
    const offset = source.position;
    const block = await source.read(BLOCK);
    const pendingMeta = localPax !== undefined || longName !== undefined || longLink !== undefined;
    if (block.length === 0 && !pendingMeta) return undefined;
    if (block.length < BLOCK) throw truncated(what, `header at offset ${offset} is incomplete`);
    if (isZeroBlock(block)) {
      if (pendingMeta) throw new BasaltError('invalid', `${what}: extended header at offset ${offset} is followed by the end of the archive`);
      await source.read(BLOCK); // the second end-of-archive block, possibly absent
      return undefined;
    }
    if (!checksumMatches(block))
      throw new BasaltError('integrity', `${what}: tar header at offset ${offset} has a bad checksum`, { hint: 'the data is not a tar stream, or it is corrupt' });
    const size = numericField(block, F.size);
    if (!Number.isFinite(size) || size < 0) throw new BasaltError('invalid', `${what}: tar header at offset ${offset} has an invalid size field`);
    const flag = String.fromCharCode(block[156] as number);
    const readMeta = async (): Promise<Buffer> => {
      if (size > MAX_META_BYTES) throw new BasaltError('invalid', `${what}: extended header at offset ${offset} is ${size} bytes, more than basalt accepts`);
      const data = await source.read(size);
      const padding = (BLOCK - (size % BLOCK)) % BLOCK;
      if (data.length < size || (await source.skip(padding)) < padding) throw truncated(what, `extended header at offset ${offset} is incomplete`);
      return data;
    };
    switch (flag) {
      case 'x':
      case 'X': {
        const records = parsePaxRecords(await readMeta());
        if (!records) throw new BasaltError('invalid', `${what}: PAX header at offset ${offset} is malformed`);
        localPax = new Map([...(localPax ?? []), ...records]);
        continue;
      }
      case 'g': {
        const records = parsePaxRecords(await readMeta());
        if (!records) throw new BasaltError('invalid', `${what}: PAX global header at offset ${offset} is malformed`);
        for (const [k, v] of records) globalPax.set(k, v);
        continue;
      }
      case 'L':
        longName = rawField(await readMeta(), [0, size]);
        continue;
      case 'K':
        longLink = rawField(await readMeta(), [0, size]);
        continue;
      case 'V': // GNU volume label: not a file
        await readMeta();
        continue;
      case 'S':
      case 'M':
      case 'N':
        throw new BasaltError('unsupported', `${what}: tar entry at offset ${offset} uses GNU extension type '${flag}' (sparse, multi-volume or old long names)`, {
          hint: 'recreate the archive without --sparse or multi-volume options',
        });
    }
    const pax = effectivePax(globalPax, localPax);
    for (const key of pax.keys())
      if (key.startsWith('GNU.sparse.')) throw new BasaltError('unsupported', `${what}: tar entry at offset ${offset} is a PAX sparse file`, { hint: 'recreate the archive without --sparse' });
    return buildHeader(block, flag, size, pax, longName, longLink, what, offset);
  }
}

/** Global records overlaid by local ones; an empty value unsets a keyword (POSIX), except for xattrs. */
function effectivePax(globalPax: Map<string, Buffer>, localPax: Map<string, Buffer> | undefined): Map<string, Buffer> {
  const merged = new Map([...globalPax, ...(localPax ?? [])]);
  for (const [k, v] of merged) if (v.length === 0 && !isXattrKey(k)) merged.delete(k);
  return merged;
}

function isXattrKey(key: string): boolean {
  return key.startsWith('SCHILY.xattr.') || key.startsWith('LIBARCHIVE.xattr.');
}

const TYPES: Record<string, TarEntryType> = { '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'directory', '6': 'fifo', D: 'directory' };
const HEADER_ONLY: ReadonlySet<TarEntryType> = new Set(['hardlink', 'symlink', 'char', 'block', 'directory', 'fifo']);

function buildHeader(
  block: Buffer, flag: string, fieldSize: number, pax: Map<string, Buffer>,
  longName: Buffer | undefined, longLink: Buffer | undefined, what: string, offset: number,
): ParsedHeader {
  const format = headerFormat(block);
  const paxText = (key: string): string | undefined => pax.get(key)?.toString('utf8');
  const paxNumber = (key: string, fallback: number): number => {
    const text = paxText(key);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value)) throw new BasaltError('invalid', `${what}: PAX record ${key}="${text}" at offset ${offset} is not a number`);
    return value;
  };
  const fieldNumber = (field: readonly [number, number], name: string): number => {
    const value = numericField(block, field);
    if (Number.isNaN(value)) throw new BasaltError('invalid', `${what}: tar header at offset ${offset} has an invalid ${name} field`);
    return value;
  };

  let path = paxText('path') ?? longName?.toString('utf8');
  if (path === undefined) {
    const name = stringField(block, F.name);
    // GNU headers reuse the prefix area for atime/ctime; star's prefix is 131 bytes.
    const prefix = format === 'ustar' ? stringField(block, F.prefix) : format === 'star' ? stringField(block, [345, 131]) : '';
    path = prefix ? `${prefix}/${name}` : name;
  }
  // Unknown types (contiguous '7', Solaris 'A', ...) extract as regular files, as POSIX says.
  let type: TarEntryType = TYPES[flag] ?? 'file';
  if (type === 'file' && (flag === '\0' || flag === '0') && path.endsWith('/')) type = 'directory'; // old v7 directories
  if (path.length > 1) path = path.replace(/\/+$/, '') || '/';

  const size = paxNumber('size', fieldSize);
  const header: TarHeader = {
    path,
    type,
    mode: fieldNumber(F.mode, 'mode') & 0o7777,
    uid: paxNumber('uid', fieldNumber(F.uid, 'uid')),
    gid: paxNumber('gid', fieldNumber(F.gid, 'gid')),
    size: type === 'file' ? size : 0,
    mtime: paxNumber('mtime', fieldNumber(F.mtime, 'mtime')),
  };
  if (format !== 'v7') {
    const uname = paxText('uname') ?? stringField(block, F.uname);
    const gname = paxText('gname') ?? stringField(block, F.gname);
    if (uname) header.uname = uname;
    if (gname) header.gname = gname;
  }
  if (type === 'symlink' || type === 'hardlink') header.linkname = paxText('linkpath') ?? longLink?.toString('utf8') ?? stringField(block, F.linkname);
  if (type === 'char' || type === 'block') {
    header.devmajor = fieldNumber(F.devmajor, 'devmajor');
    header.devminor = fieldNumber(F.devminor, 'devminor');
  }
  const xattrs = xattrsOf(pax);
  if (xattrs.size > 0) header.xattrs = xattrs;
  // Header-only types carry no data whatever their size field says (as Go's reader does);
  // a GNU dumpdir ('D') does carry data, which is skipped.
  const dataSize = HEADER_ONLY.has(type) && flag !== 'D' ? 0 : size;
  return { header, dataSize };
}

function xattrsOf(pax: Map<string, Buffer>): Map<string, Buffer> {
  const xattrs = new Map<string, Buffer>();
  for (const [key, value] of pax) {
    if (key.startsWith('SCHILY.xattr.')) xattrs.set(key.slice('SCHILY.xattr.'.length), value);
    else if (key.startsWith('LIBARCHIVE.xattr.')) {
      // libarchive percent-encodes the name and base64-encodes the value.
      const name = Buffer.from(key.slice('LIBARCHIVE.xattr.'.length).replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1').toString('utf8');
      xattrs.set(name, Buffer.from(value.toString('latin1'), 'base64'));
    }
  }
  return xattrs;
}
