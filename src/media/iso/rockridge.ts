/**
 * Rock Ridge (RRIP over SUSP) in directory records: POSIX names (NM), modes (PX), symbolic
 * links (SL), and continuation areas (CE) where a record's entries did not fit.
 */
export interface SuspEntry {
  signature: string;
  version: number;
  data: Buffer;
}

export function parseSusp(area: Buffer): SuspEntry[] {
  const entries: SuspEntry[] = [];
  let offset = 0;
  while (offset + 4 <= area.length) {
    const signature = area.toString('latin1', offset, offset + 2);
    const length = area[offset + 2] as number;
    if (length < 4 || offset + length > area.length || !/^[A-Z]{2}$/.test(signature)) break;
    entries.push({ signature, version: area[offset + 3] as number, data: Buffer.from(area.subarray(offset + 4, offset + length)) });
    if (signature === 'ST') break;
    offset += length;
  }
  return entries;
}

/** Where a CE entry says the entries go on: block, offset inside it, length. */
export function continuation(entry: SuspEntry): { block: number; offset: number; length: number } {
  return { block: entry.data.readUInt32LE(0), offset: entry.data.readUInt32LE(8), length: entry.data.readUInt32LE(16) };
}

export interface RockRidgeInfo {
  name?: string;
  mode?: number;
  symlink?: string;
  /** Relocation entries (CL, PL, RE): deep directories moved elsewhere by the writer. */
  relocated: boolean;
}

export function rockRidgeInfo(entries: readonly SuspEntry[]): RockRidgeInfo {
  let name: string | undefined;
  let symlink: string | undefined;
  let mode: number | undefined;
  let relocated = false;
  for (const e of entries) {
    if (e.signature === 'NM') {
      const flags = e.data[0] as number;
      if (flags & 2) name = '.';
      else if (flags & 4) name = '..';
      else name = (name ?? '') + e.data.subarray(1).toString('utf8');
    } else if (e.signature === 'PX' && e.data.length >= 8) {
      mode = e.data.readUInt32LE(0);
    } else if (e.signature === 'SL') {
      symlink = (symlink === undefined ? '' : symlink) + symlinkComponents(e.data.subarray(1));
    } else if (e.signature === 'CL' || e.signature === 'PL' || e.signature === 'RE') {
      relocated = true;
    }
  }
  return { ...(name !== undefined ? { name } : {}), ...(mode !== undefined ? { mode } : {}), ...(symlink !== undefined ? { symlink } : {}), relocated };
}

function symlinkComponents(data: Buffer): string {
  const parts: string[] = [];
  let offset = 0;
  while (offset + 2 <= data.length) {
    const flags = data[offset] as number;
    const length = data[offset + 1] as number;
    const text = data.subarray(offset + 2, offset + 2 + length).toString('utf8');
    if (flags & 2) parts.push('.');
    else if (flags & 4) parts.push('..');
    else if (flags & 8) parts.push('');
    else parts.push(text);
    offset += 2 + length;
  }
  return parts.join('/').replace(/^\/\//, '/');
}

function entry(signature: string, version: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(signature, 'latin1'), Buffer.from([data.length + 4, version]), data]);
}

function both32(value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(value, 0);
  b.writeUInt32BE(value, 4);
  return b;
}

/**
 * PX and NM for a new entry. `pxLength` follows the volume's own PX entries: 36 bytes is
 * RRIP 1.10 (no inode number), 44 is RRIP 1.12.
 */
export function rockRidgeEntries(name: string, mode: number, pxLength: number, inode: number): Buffer {
  const px = [both32(mode), both32(mode & 0o040000 ? 2 : 1), both32(0), both32(0)];
  if (pxLength >= 44) px.push(both32(inode));
  return Buffer.concat([entry('PX', 1, Buffer.concat(px)), entry('NM', 1, Buffer.concat([Buffer.from([0]), Buffer.from(name, 'utf8')]))]);
}
