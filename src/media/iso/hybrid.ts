/**
 * The hybrid layout in an ISO's 32 KiB system area: an MBR (isohybrid, GRUB's protective
 * label) and a GPT whose partitions point into the ISO (the EFI image, gap fillers) or
 * past it (appended partitions). When a remaster grows the image, the entries that reach
 * the old end are stretched to the new end and the backup GPT moves to the new last sector,
 * so the image still boots from a USB stick.
 */
import { crc32 } from '../crc32.js';
import { guidFromBytes } from '../guid.js';
import { SECTOR as ISO_SECTOR, SYSTEM_AREA_SECTORS } from './format.js';

const BLOCK = 512;
const SYSTEM_AREA = SYSTEM_AREA_SECTORS * ISO_SECTOR;
/** isohybrid rounds images up to whole cylinders (64 heads × 32 sectors = 1 MiB). */
const END_SLACK_BLOCKS = 2048;
/** GPT gap fillers end right before the backup table; real partitions (HFS+) end earlier. */
const GPT_END_SLACK_BLOCKS = 64;

export interface MbrPartition {
  index: number;
  bootable: boolean;
  type: number;
  startLba: number;
  sizeBlocks: number;
}

export interface IsoGptPartition {
  index: number;
  typeGuid: string;
  name: string;
  firstLba: number;
  lastLba: number;
}

export interface HybridLayout {
  mbr: MbrPartition[];
  gpt?: { entriesLba: number; entryCount: number; entrySize: number; firstUsable: number; lastUsable: number; backupLba: number; partitions: IsoGptPartition[] };
}

export function readHybridLayout(systemArea: Buffer): HybridLayout {
  const mbr: MbrPartition[] = [];
  if (systemArea.length >= BLOCK && systemArea[510] === 0x55 && systemArea[511] === 0xaa) {
    for (let i = 0; i < 4; i++) {
      const o = 446 + i * 16;
      const type = systemArea[o + 4] as number;
      const sizeBlocks = systemArea.readUInt32LE(o + 12);
      if (type === 0 && sizeBlocks === 0) continue;
      mbr.push({ index: i + 1, bootable: systemArea[o] === 0x80, type, startLba: systemArea.readUInt32LE(o + 8), sizeBlocks });
    }
  }
  const header = systemArea.subarray(BLOCK, 2 * BLOCK);
  if (header.toString('latin1', 0, 8) !== 'EFI PART') return { mbr };
  const entriesLba = Number(header.readBigUInt64LE(72));
  const entryCount = header.readUInt32LE(80);
  const entrySize = header.readUInt32LE(84);
  const partitions: IsoGptPartition[] = [];
  const arrayEnd = entriesLba * BLOCK + entryCount * entrySize;
  if (entrySize >= 128 && arrayEnd <= SYSTEM_AREA) {
    for (let i = 0; i < entryCount; i++) {
      const e = systemArea.subarray(entriesLba * BLOCK + i * entrySize, entriesLba * BLOCK + (i + 1) * entrySize);
      if (e.subarray(0, 16).every((b) => b === 0)) continue;
      partitions.push({
        index: i + 1,
        typeGuid: guidFromBytes(e, 0),
        name: Buffer.from(e.subarray(56, 128)).toString('utf16le').replace(/\0.*$/s, ''),
        firstLba: Number(e.readBigUInt64LE(32)),
        lastLba: Number(e.readBigUInt64LE(40)),
      });
    }
  }
  return {
    mbr,
    gpt: {
      entriesLba,
      entryCount,
      entrySize,
      firstUsable: Number(header.readBigUInt64LE(40)),
      lastUsable: Number(header.readBigUInt64LE(48)),
      backupLba: Number(header.readBigUInt64LE(32)),
      partitions,
    },
  };
}

export interface ResizedHybrid {
  systemArea: Buffer;
  /** The backup GPT (entries then header) for the last blocks of the new image, if any. */
  backupGpt?: Buffer;
  /** Byte range of the old backup GPT, to blank in the copy (it would otherwise look valid). */
  oldBackupRange?: { start: number; end: number };
}

/**
 * Rewrites the system area for an image grown from `oldSize` to `newSize` bytes. Entries
 * reaching the old end (within isohybrid's cylinder padding) are stretched; others, like
 * the EFI image's partition, are left alone because their data did not move.
 */
export function resizeHybridLayout(systemArea: Buffer, oldSize: number, newSize: number): ResizedHybrid {
  const area = Buffer.from(systemArea);
  const oldBlocks = Math.floor(oldSize / BLOCK);
  const newBlocks = Math.floor(newSize / BLOCK);
  const delta = newBlocks - oldBlocks;
  if (area[510] === 0x55 && area[511] === 0xaa) {
    for (let i = 0; i < 4; i++) {
      const o = 446 + i * 16;
      const start = area.readUInt32LE(o + 8);
      const size = area.readUInt32LE(o + 12);
      if (size === 0) continue;
      if (start + size >= oldBlocks - END_SLACK_BLOCKS && start < oldBlocks) area.writeUInt32LE(Math.min(0xffffffff, size + delta), o + 12);
    }
  }
  const header = area.subarray(BLOCK, 2 * BLOCK);
  if (header.toString('latin1', 0, 8) !== 'EFI PART') return { systemArea: area };
  const headerSize = header.readUInt32LE(12);
  const entriesLba = Number(header.readBigUInt64LE(72));
  const entryCount = header.readUInt32LE(80);
  const entrySize = header.readUInt32LE(84);
  const arrayBytes = entryCount * entrySize;
  if (entriesLba * BLOCK + arrayBytes > SYSTEM_AREA) return { systemArea: area };
  const oldBackupLba = Number(header.readBigUInt64LE(32));
  const oldLastUsable = Number(header.readBigUInt64LE(48));
  const entries = area.subarray(entriesLba * BLOCK, entriesLba * BLOCK + arrayBytes);
  for (let i = 0; i < entryCount; i++) {
    const e = entries.subarray(i * entrySize, (i + 1) * entrySize);
    if (e.subarray(0, 16).every((b) => b === 0)) continue;
    const last = Number(e.readBigUInt64LE(40));
    if (last >= oldLastUsable - GPT_END_SLACK_BLOCKS && last <= oldLastUsable) e.writeBigUInt64LE(BigInt(last + delta), 40);
  }
  const arrayBlocks = Math.ceil(arrayBytes / BLOCK);
  const newBackupLba = newBlocks - 1;
  const newLastUsable = newBackupLba - arrayBlocks - 1;
  header.writeBigUInt64LE(BigInt(newBackupLba), 32);
  header.writeBigUInt64LE(BigInt(newLastUsable), 48);
  header.writeUInt32LE(crc32(entries), 88);
  header.writeUInt32LE(0, 16);
  header.writeUInt32LE(crc32(header.subarray(0, headerSize)), 16);

  const backupHeader = Buffer.from(header);
  backupHeader.writeBigUInt64LE(BigInt(newBackupLba), 24);
  backupHeader.writeBigUInt64LE(1n, 32);
  backupHeader.writeBigUInt64LE(BigInt(newBackupLba - arrayBlocks), 72);
  backupHeader.writeUInt32LE(0, 16);
  backupHeader.writeUInt32LE(crc32(backupHeader.subarray(0, headerSize)), 16);
  const backupArray = Buffer.alloc(arrayBlocks * BLOCK);
  entries.copy(backupArray);
  const oldArrayBlocks = arrayBlocks;
  return {
    systemArea: area,
    backupGpt: Buffer.concat([backupArray, backupHeader]),
    oldBackupRange: oldBackupLba > 0 && oldBackupLba < oldBlocks ? { start: (oldBackupLba - oldArrayBlocks) * BLOCK, end: (oldBackupLba + 1) * BLOCK } : undefined,
  } as ResizedHybrid;
}

/**
 * Points the MBR and GPT entries that describe an image at [oldStart, +oldBlocks) — the
 * El Torito EFI image exposed as a partition — at its new place (512-byte blocks). The GPT
 * CRCs are left for resizeHybridLayout, which runs after.
 */
export function moveHybridPartition(systemArea: Buffer, oldStart: number, newStart: number, newBlocks: number): Buffer {
  const area = Buffer.from(systemArea);
  if (area[510] === 0x55 && area[511] === 0xaa) {
    for (let i = 0; i < 4; i++) {
      const o = 446 + i * 16;
      if (area.readUInt32LE(o + 12) === 0 || area.readUInt32LE(o + 8) !== oldStart) continue;
      area.writeUInt32LE(newStart, o + 8);
      area.writeUInt32LE(newBlocks, o + 12);
    }
  }
  const header = area.subarray(BLOCK, 2 * BLOCK);
  if (header.toString('latin1', 0, 8) !== 'EFI PART') return area;
  const entriesLba = Number(header.readBigUInt64LE(72));
  const entryCount = header.readUInt32LE(80);
  const entrySize = header.readUInt32LE(84);
  if (entriesLba * BLOCK + entryCount * entrySize > SYSTEM_AREA) return area;
  for (let i = 0; i < entryCount; i++) {
    const e = area.subarray(entriesLba * BLOCK + i * entrySize, entriesLba * BLOCK + (i + 1) * entrySize);
    if (e.subarray(0, 16).every((b) => b === 0) || Number(e.readBigUInt64LE(32)) !== oldStart) continue;
    e.writeBigUInt64LE(BigInt(newStart), 32);
    e.writeBigUInt64LE(BigInt(newStart + newBlocks - 1), 40);
  }
  return area;
}
