import type { Readable, Writable } from 'node:stream';
import { BasaltError } from '../errors.js';
import { BLOCK, F, paxRecord, writeBase256, writeBytes, writeChecksum, writeOctal } from './tar-format.js';
import type { TarEntryType, TarHeader } from './tar-types.js';

const TYPEFLAG: Record<TarEntryType, string> = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', directory: '5', fifo: '6' };
const ZERO_BLOCK = Buffer.alloc(BLOCK);

/**
 * Writes a ustar stream, adding a PAX header only for what ustar cannot hold (long paths and
 * link names, sizes ≥ 8 GiB, big ids, long user names, negative mtimes, xattrs). Output is a
 * function of the headers and bodies alone: the same input gives the same bytes. Fractional
 * mtimes are truncated to whole seconds.
 */
export class TarWriter {
  private failure: Error | undefined;
  private busy = false;

  constructor(private readonly out: Writable) {
    out.on('error', (err: Error) => {
      this.failure ??= err;
    });
  }

  /** Appends one entry. `body` must hold exactly `header.size` bytes (files only). */
  async add(header: TarHeader, body?: Readable | Buffer): Promise<void> {
    if (this.busy) throw new Error('TarWriter.add called while a previous add is still running');
    this.busy = true;
    try {
      const { blocks, path } = encodeHeader(header);
      await this.write(blocks);
      const size = header.type === 'file' ? header.size : 0;
      let written = 0;
      if (Buffer.isBuffer(body)) {
        written = body.length;
        if (written === size) await this.write(body);
      } else if (body) {
        for await (const chunk of body) {
          const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
          written += data.length;
          if (written > size) break;
          await this.write(data);
        }
      }
      if (written !== size)
        throw new BasaltError('invalid', `tar entry "${path}": ${written > size ? 'more' : 'fewer'} bytes of data than its declared size ${size}`, {
          hint: 'the file changed while it was being archived',
        });
      const padding = (BLOCK - (size % BLOCK)) % BLOCK;
      if (padding > 0) await this.write(ZERO_BLOCK.subarray(0, padding));
    } finally {
      this.busy = false;
    }
  }

  /** Writes the two end-of-archive blocks and ends `out`, resolving once it has flushed. */
  async finish(): Promise<void> {
    await this.write(Buffer.alloc(BLOCK * 2));
    await new Promise<void>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.out.once('error', reject);
      this.out.end(() => resolve());
    });
  }

  private async write(data: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.out.destroyed) throw new BasaltError('io', 'tar output was closed before the archive was complete');
    if (this.out.write(data)) return;
    // Wait for room; an error or an early close of the output must not leave us waiting forever.
    await new Promise<void>((resolve, reject) => {
      const settle = (err?: Error): void => {
        this.out.off('drain', onDrain);
        this.out.off('error', onError);
        this.out.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onDrain = (): void => settle();
      const onError = (err: Error): void => settle(err);
      const onClose = (): void => settle(this.failure ?? new BasaltError('io', 'tar output was closed before the archive was complete'));
      this.out.once('drain', onDrain);
      this.out.once('error', onError);
      this.out.once('close', onClose);
    });
  }
}

/** The header block(s) for an entry: an optional PAX header, then the ustar header. */
export function encodeHeader(header: TarHeader): { blocks: Buffer; path: string } {
  const pax: Buffer[] = [];
  const block = Buffer.alloc(BLOCK);
  let path = header.path.replace(/\/+$/, '');
  if (header.type === 'directory') path += '/';
  const pathBytes = Buffer.from(path, 'utf8');

  const split = splitUstarPath(pathBytes);
  if (split) {
    writeBytes(block, F.name, split.name);
    writeBytes(block, F.prefix, split.prefix);
  } else {
    pax.push(paxRecord('path', pathBytes));
    writeBytes(block, F.name, pathBytes.subarray(0, 100));
  }
  writeOctal(block, F.mode, header.mode & 0o7777);
  numberOrPax(block, F.uid, header.uid, 'uid', pax);
  numberOrPax(block, F.gid, header.gid, 'gid', pax);
  numberOrPax(block, F.size, header.type === 'file' ? header.size : 0, 'size', pax);
  numberOrPax(block, F.mtime, Math.floor(header.mtime), 'mtime', pax);
  block.write(TYPEFLAG[header.type], 156, 1, 'latin1');
  if (header.linkname !== undefined) {
    const link = Buffer.from(header.linkname, 'utf8');
    if (!writeBytes(block, F.linkname, link)) {
      pax.push(paxRecord('linkpath', link));
      writeBytes(block, F.linkname, link.subarray(0, 100));
    }
  }
  block.write('ustar\x0000', 257, 8, 'latin1');
  stringOrPax(block, F.uname, header.uname, 'uname', pax);
  stringOrPax(block, F.gname, header.gname, 'gname', pax);
  for (const [field, value] of [[F.devmajor, header.devmajor ?? 0], [F.devminor, header.devminor ?? 0]] as const)
    if (!writeOctal(block, field, value)) writeBase256(block, field, value);
  if (header.xattrs)
    for (const name of [...header.xattrs.keys()].sort()) pax.push(paxRecord(`SCHILY.xattr.${name}`, header.xattrs.get(name) as Buffer));
  writeChecksum(block);
  if (pax.length === 0) return { blocks: block, path };
  return { blocks: Buffer.concat([paxHeaderBlocks(path, header, sortRecords(pax)), block]), path };
}

/** Splits a path into ustar's 155-byte prefix and 100-byte name at a slash, if it can be done. */
function splitUstarPath(path: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  if (path.length <= 100) return { prefix: Buffer.alloc(0), name: path };
  if (path.length > 256) return undefined;
  // The name part must be non-empty and ≤ 100 bytes; pick the first slash that allows that.
  for (let i = Math.max(0, path.length - 101); i < path.length - 1 && i <= 155; i++) {
    if (path[i] === 0x2f && i > 0) return { prefix: path.subarray(0, i), name: path.subarray(i + 1) };
  }
  return undefined;
}

function numberOrPax(block: Buffer, field: readonly [number, number], value: number, key: string, pax: Buffer[]): void {
  if (writeOctal(block, field, value)) return;
  pax.push(paxRecord(key, Buffer.from(String(value), 'latin1')));
  writeOctal(block, field, 0);
}

function stringOrPax(block: Buffer, field: readonly [number, number], value: string | undefined, key: string, pax: Buffer[]): void {
  if (!value) return;
  const bytes = Buffer.from(value, 'utf8');
  if (!writeBytes(block, field, bytes)) pax.push(paxRecord(key, bytes));
}

/** Records sorted by key, so the output does not depend on the order they were added. */
function sortRecords(records: Buffer[]): Buffer[] {
  const key = (r: Buffer): string => r.toString('latin1', r.indexOf(0x20) + 1, r.indexOf(0x3d));
  return records.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** A PAX 'x' entry named like Go's writer does (dir/PaxHeaders.0/base), with fixed metadata. */
function paxHeaderBlocks(path: string, header: TarHeader, records: Buffer[]): Buffer {
  const data = Buffer.concat(records);
  const trimmed = path.replace(/\/+$/, '');
  const slash = trimmed.lastIndexOf('/');
  const name = Buffer.from(slash === -1 ? `PaxHeaders.0/${trimmed}` : `${trimmed.slice(0, slash)}/PaxHeaders.0/${trimmed.slice(slash + 1)}`, 'utf8');
  const block = Buffer.alloc(BLOCK);
  writeBytes(block, F.name, name.subarray(0, 100));
  writeOctal(block, F.mode, 0o644);
  writeOctal(block, F.uid, 0);
  writeOctal(block, F.gid, 0);
  writeOctal(block, F.size, data.length);
  writeOctal(block, F.mtime, Math.max(0, Math.min(Math.floor(header.mtime), 0o77777777777)));
  block.write('x', 156, 1, 'latin1');
  block.write('ustar\x0000', 257, 8, 'latin1');
  writeChecksum(block);
  const padding = (BLOCK - (data.length % BLOCK)) % BLOCK;
  return Buffer.concat([block, data, Buffer.alloc(padding)]);
}
