/**
 * Reads a GPT back from a disk image, checking signatures and CRCs. When the primary
 * header is damaged the backup at the disk's end is used, as firmware does.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { BasaltError, ioError } from '../oci/errors.js';
import { crc32 } from './crc32.js';
import { guidFromBytes } from './guid.js';
import { ENTRY_SIZE, SECTOR, type PlannedPartition } from './gpt.js';

/** A partition as read back: the same shape gpt.ts plans. */
export type GptPartition = PlannedPartition;

export interface GptTable {
  diskGuid: string;
  diskSize: number;
  firstUsableLba: number;
  lastUsableLba: number;
  /** Which header was read: 'backup' means the primary was damaged. */
  source: 'primary' | 'backup';
  partitions: GptPartition[];
}

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, offset);
  return buf.subarray(0, bytesRead);
}

/** Parses the header at `lba`; returns a reason string instead when it is not valid. */
async function tryHeader(fh: FileHandle, lba: number, diskSize: number): Promise<Omit<GptTable, 'source' | 'diskSize'> | string> {
  const h = await readAt(fh, lba * SECTOR, SECTOR);
  if (h.length < SECTOR || h.toString('latin1', 0, 8) !== 'EFI PART') return `no GPT signature at LBA ${lba}`;
  const headerSize = h.readUInt32LE(12);
  if (headerSize < 92 || headerSize > SECTOR) return `header at LBA ${lba} has a bad size ${headerSize}`;
  const copy = Buffer.from(h.subarray(0, headerSize));
  const stored = copy.readUInt32LE(16);
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== stored) return `header at LBA ${lba} fails its CRC32`;
  const arrayLba = Number(h.readBigUInt64LE(72));
  const count = h.readUInt32LE(80);
  const entrySize = h.readUInt32LE(84);
  if (entrySize < ENTRY_SIZE || count > 1024 || arrayLba * SECTOR + count * entrySize > diskSize) return `header at LBA ${lba} describes an impossible partition array`;
  const array = await readAt(fh, arrayLba * SECTOR, count * entrySize);
  if (crc32(array) !== h.readUInt32LE(88)) return `partition array of the header at LBA ${lba} fails its CRC32`;
  const partitions: GptPartition[] = [];
  for (let i = 0; i < count; i++) {
    const e = array.subarray(i * entrySize, (i + 1) * entrySize);
    if (e.subarray(0, 16).every((b) => b === 0)) continue;
    const firstLba = Number(e.readBigUInt64LE(32));
    const lastLba = Number(e.readBigUInt64LE(40));
    const nameUnits = e.subarray(56, 128).toString('utf16le');
    const nul = nameUnits.indexOf('\0');
    partitions.push({
      number: i + 1,
      name: nul === -1 ? nameUnits : nameUnits.slice(0, nul),
      typeGuid: guidFromBytes(e, 0),
      uniqueGuid: guidFromBytes(e, 16),
      attributes: e.readBigUInt64LE(48),
      firstLba,
      lastLba,
      offset: firstLba * SECTOR,
      size: (lastLba - firstLba + 1) * SECTOR,
    });
  }
  return {
    diskGuid: guidFromBytes(h, 56),
    firstUsableLba: Number(h.readBigUInt64LE(40)),
    lastUsableLba: Number(h.readBigUInt64LE(48)),
    partitions,
  };
}

export async function readGpt(path: string): Promise<GptTable> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw ioError(`reading the partition table of ${path}`, e);
  }
  try {
    const diskSize = (await fh.stat()).size;
    const primary = await tryHeader(fh, 1, diskSize);
    if (typeof primary !== 'string') return { ...primary, diskSize, source: 'primary' };
    const backup = await tryHeader(fh, diskSize / SECTOR - 1, diskSize);
    if (typeof backup !== 'string') return { ...backup, diskSize, source: 'backup' };
    throw new BasaltError('invalid', `${path} has no valid GPT: ${primary}; ${backup}`, { hint: 'is it a partitioned disk image in raw format?' });
  } finally {
    await fh.close();
  }
}
