/**
 * The byte layout of tar header blocks (v7, ustar, GNU, star) and PAX extended-header
 * records. Pure functions over Buffers; the streaming lives in tar-reader.ts/tar-writer.ts.
 */

export const BLOCK = 512;

/** Field offsets and lengths of a ustar header block. */
export const F = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  chksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

type Field = readonly [number, number];

export type HeaderFormat = 'ustar' | 'gnu' | 'star' | 'v7';

export function headerFormat(block: Buffer): HeaderFormat {
  const magic = block.toString('latin1', 257, 265);
  if (magic === 'ustar  \0') return 'gnu';
  if (magic.startsWith('ustar\0')) return block.toString('latin1', 508, 512) === 'tar\0' ? 'star' : 'ustar';
  return 'v7';
}

/** A NUL-terminated byte string field, as raw bytes. */
export function rawField(block: Buffer, [off, len]: Field): Buffer {
  const field = block.subarray(off, off + len);
  const nul = field.indexOf(0);
  return nul === -1 ? field : field.subarray(0, nul);
}

export function stringField(block: Buffer, field: Field): string {
  return rawField(block, field).toString('utf8');
}

/**
 * A numeric field: octal ASCII (padded with spaces or NULs), or GNU base-256 when the high
 * bit of the first byte is set (0x80 positive, 0xff negative two's complement).
 * Returns NaN when the field holds garbage.
 */
export function numericField(block: Buffer, [off, len]: Field): number {
  const field = block.subarray(off, off + len);
  const first = field[0] ?? 0;
  if (first & 0x80) {
    const negative = first === 0xff;
    let value = 0n;
    for (let i = 0; i < field.length; i++) {
      let byte = field[i] ?? 0;
      if (i === 0) byte &= 0x7f;
      if (negative) byte = ~byte & 0xff;
      value = (value << 8n) | BigInt(byte);
    }
    if (negative) value = -(value + 1n);
    return Number(value);
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/g, '').replace(/^[ \0]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return Number.NaN;
  return parseInt(text, 8);
}

/** Whether the checksum field matches the block (unsigned, or the signed sum old tars wrote). */
export function checksumMatches(block: Buffer): boolean {
  const stored = numericField(block, F.chksum);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** Writes `value` as zero-padded octal with a trailing NUL; false if it does not fit. */
export function writeOctal(block: Buffer, [off, len]: Field, value: number): boolean {
  if (!Number.isInteger(value) || value < 0) return false;
  const text = value.toString(8);
  if (text.length > len - 1) return false;
  block.write(text.padStart(len - 1, '0') + '\0', off, len, 'latin1');
  return true;
}

/** Writes `value` in GNU base-256 (for numbers octal cannot hold, e.g. huge device numbers). */
export function writeBase256(block: Buffer, [off, len]: Field, value: number): void {
  let v = BigInt(Math.trunc(value));
  for (let i = len - 1; i >= 0; i--) {
    block[off + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  block[off] = (block[off] as number) | 0x80;
}

/** Writes a byte string; false if it does not fit (a field may be filled without a NUL). */
export function writeBytes(block: Buffer, [off, len]: Field, bytes: Buffer): boolean {
  if (bytes.length > len) return false;
  bytes.copy(block, off);
  return true;
}

export function writeChecksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i] as number;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
}

/**
 * Parses PAX records (`LEN KEY=VALUE\n`) as bytes: values stay Buffers, so binary xattr
 * values (NUL, 0xff, newlines) survive. Returns undefined when the data is malformed.
 */
export function parsePaxRecords(data: Buffer): Map<string, Buffer> | undefined {
  const records = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // some writers pad the record area with NULs
    const space = data.indexOf(0x20, pos);
    if (space === -1) return undefined;
    const lengthText = data.toString('latin1', pos, space);
    if (!/^[0-9]+$/.test(lengthText)) return undefined;
    const length = parseInt(lengthText, 10);
    const end = pos + length;
    if (length <= space - pos + 1 || end > data.length || data[end - 1] !== 0x0a) return undefined;
    const equals = data.indexOf(0x3d, space + 1);
    if (equals === -1 || equals >= end) return undefined;
    records.set(data.toString('utf8', space + 1, equals), data.subarray(equals + 1, end - 1));
    pos = end;
  }
  return records;
}

/** Encodes one PAX record; the length prefix counts itself. */
export function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length), 'latin1'), body]);
}
