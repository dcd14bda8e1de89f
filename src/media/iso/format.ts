/**
 * ISO 9660 (ECMA-119) on-disk structures: both-endian numbers, directory records and the
 * fields of volume descriptors that basalt reads or rewrites. Offsets are the standard's.
 */
export const SECTOR = 2048;
/** Volume descriptors start after the 32 KiB system area (MBR, GPT, APM live there). */
export const SYSTEM_AREA_SECTORS = 16;

export const VD_BOOT = 0;
export const VD_PRIMARY = 1;
export const VD_SUPPLEMENTARY = 2;
export const VD_TERMINATOR = 255;

/** Byte offsets inside a primary or supplementary volume descriptor. */
export const PVD = {
  systemId: 8,
  volumeId: 40,
  volumeSpaceSize: 80,
  escapes: 88,
  pathTableSize: 132,
  typeLPathTable: 140,
  optTypeLPathTable: 144,
  typeMPathTable: 148,
  optTypeMPathTable: 152,
  rootRecord: 156,
  volumeSetId: 190,
  publisherId: 318,
  preparerId: 446,
  applicationId: 574,
  creationDate: 813,
  modificationDate: 830,
  expirationDate: 847,
  effectiveDate: 864,
  applicationUse: 883,
} as const;

export const FLAG_HIDDEN = 1;
export const FLAG_DIRECTORY = 2;
export const FLAG_MULTI_EXTENT = 0x80;

export function writeBoth32(buf: Buffer, offset: number, value: number): void {
  buf.writeUInt32LE(value, offset);
  buf.writeUInt32BE(value, offset + 4);
}

export function writeBoth16(buf: Buffer, offset: number, value: number): void {
  buf.writeUInt16LE(value, offset);
  buf.writeUInt16BE(value, offset + 2);
}

/** One directory record as stored, with its raw bytes kept so unknown fields survive a rewrite. */
export interface DirRecord {
  extent: number;
  size: number;
  flags: number;
  /** The identifier as stored: d-characters (primary) or UCS-2BE bytes (Joliet). */
  identifier: Buffer;
  /** The System Use area (Rock Ridge lives here). */
  systemUse: Buffer;
  raw: Buffer;
}

export function parseDirRecord(buf: Buffer, offset: number): DirRecord | undefined {
  const length = buf[offset] ?? 0;
  if (length === 0) return undefined;
  if (length < 34 || offset + length > buf.length) throw new RangeError(`directory record of length ${length} at ${offset} overruns its sector`);
  const idLength = buf[offset + 32] as number;
  const idEnd = offset + 33 + idLength;
  const suStart = idEnd + (idLength % 2 === 0 ? 1 : 0);
  if (idEnd > offset + length) throw new RangeError(`directory record identifier at ${offset} overruns the record`);
  return {
    extent: buf.readUInt32LE(offset + 2),
    size: buf.readUInt32LE(offset + 10),
    flags: buf[offset + 25] as number,
    identifier: Buffer.from(buf.subarray(offset + 33, idEnd)),
    systemUse: Buffer.from(buf.subarray(Math.min(suStart, offset + length), offset + length)),
    raw: Buffer.from(buf.subarray(offset, offset + length)),
  };
}

/** Every record of a directory extent, "." and ".." included (records never cross sectors). */
export function parseDirectory(data: Buffer): DirRecord[] {
  const records: DirRecord[] = [];
  for (let sector = 0; sector < data.length; sector += SECTOR) {
    let offset = sector;
    const end = Math.min(sector + SECTOR, data.length);
    while (offset < end) {
      const record = parseDirRecord(data.subarray(0, end), offset);
      if (!record) break;
      records.push(record);
      offset += record.raw.length;
    }
  }
  return records;
}

/** ISO 9660's 7-byte recording date from a JS date (UTC, offset 0). */
export function recordingDate(date: Date): Buffer {
  return Buffer.from([date.getUTCFullYear() - 1900, date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds(), 0]);
}

export interface NewRecordFields {
  extent: number;
  size: number;
  flags: number;
  identifier: Buffer;
  date: Buffer;
  systemUse?: Buffer;
}

/** Encodes a directory record (padding byte after an even-length identifier, even total). */
export function encodeDirRecord(fields: NewRecordFields): Buffer {
  const su = fields.systemUse ?? Buffer.alloc(0);
  const pad = fields.identifier.length % 2 === 0 ? 1 : 0;
  let length = 33 + fields.identifier.length + pad + su.length;
  if (length % 2 === 1) length += 1;
  if (length > 255) throw new RangeError(`directory record for ${fields.identifier.toString('latin1')} is ${length} bytes (max 255)`);
  const rec = Buffer.alloc(length);
  rec[0] = length;
  writeBoth32(rec, 2, fields.extent);
  writeBoth32(rec, 10, fields.size);
  fields.date.copy(rec, 18, 0, 7);
  rec[25] = fields.flags;
  writeBoth16(rec, 28, 1); // volume sequence number
  rec[32] = fields.identifier.length;
  fields.identifier.copy(rec, 33);
  su.copy(rec, 33 + fields.identifier.length + pad);
  return rec;
}

/** A copy of `raw` pointing at another extent and size (the rest, Rock Ridge included, kept). */
export function relocateRecord(raw: Buffer, extent: number, size: number): Buffer {
  const rec = Buffer.from(raw);
  writeBoth32(rec, 2, extent);
  writeBoth32(rec, 10, size);
  return rec;
}

/** Trailing spaces trimmed: how ISO 9660 pads text fields. */
export function isoText(buf: Buffer, offset: number, length: number, ucs2 = false): string {
  const slice = buf.subarray(offset, offset + length);
  const text = ucs2 ? Buffer.from(slice).swap16().toString('utf16le') : slice.toString('latin1');
  return text.replace(/[\s\0]+$/, '');
}

/** "YYYYMMDDHHMMSScc" + offset byte → ISO 8601, or undefined when unset (all zeros). */
export function decodeVolumeDate(buf: Buffer, offset: number): string | undefined {
  const digits = buf.toString('latin1', offset, offset + 16);
  if (!/^\d{16}$/.test(digits) || /^0+$/.test(digits)) return undefined;
  const tz = buf.readInt8(offset + 16) * 15;
  const sign = tz < 0 ? '-' : '+';
  const hh = String(Math.floor(Math.abs(tz) / 60)).padStart(2, '0');
  const mm = String(Math.abs(tz) % 60).padStart(2, '0');
  return `${digits.slice(0, 4)}-${digits.slice(4, 6)}-${digits.slice(6, 8)}T${digits.slice(8, 10)}:${digits.slice(10, 12)}:${digits.slice(12, 14)}.${digits.slice(14, 16)}${sign}${hh}:${mm}`;
}

/** The name a primary-tree identifier stands for when there is no Rock Ridge: version dropped. */
export function plainName(identifier: Buffer): string {
  return identifier.toString('latin1').replace(/;\d+$/, '').replace(/\.$/, '');
}

export function jolietName(identifier: Buffer): string {
  return Buffer.from(identifier).swap16().toString('utf16le').replace(/;\d+$/, '');
}

export function encodeJoliet(name: string): Buffer {
  const buf = Buffer.from(name, 'utf16le');
  return buf.swap16();
}
