/**
 * GUID Partition Table writer (UEFI spec, chapter 5): a protective MBR, the primary header
 * and partition array at the start of the disk, their backup copies at the end. Partitions
 * start on 1 MiB boundaries, as partitioning tools do, so filesystems sit aligned on any
 * storage below them.
 */
import type { FileHandle } from 'node:fs/promises';
import { BasaltError } from '../oci/errors.js';
import { crc32 } from './crc32.js';
import { deterministicGuid, guidToBytes, isGuid } from './guid.js';
import { MiB, alignDown, alignUp, formatBytes } from './sizes.js';

export const SECTOR = 512;
export const ENTRY_COUNT = 128;
export const ENTRY_SIZE = 128;
const HEADER_SIZE = 92;
const ARRAY_SECTORS = (ENTRY_COUNT * ENTRY_SIZE) / SECTOR; // 32
/** Sectors GPT needs at the disk's end: backup array and backup header. */
const TAIL_SECTORS = ARRAY_SECTORS + 1;
export const ALIGNMENT = MiB;
const MAX_NAME_UNITS = 36;

export interface PartitionSpec {
  name: string;
  typeGuid: string;
  /** Bytes (rounded up to 1 MiB), or 'rest' for everything after the other partitions. */
  size: number | 'rest';
  /** Defaults to one derived from the seed and the partition's name and position. */
  uniqueGuid?: string;
  /** GPT attribute bits (e.g. bit 63 "do not automount", bit 60 read-only). */
  attributes?: bigint;
}

export interface GptOptions {
  diskSize: number;
  partitions: readonly PartitionSpec[];
  /** Makes every GUID not given explicitly reproducible. */
  seed: string;
  diskGuid?: string;
}

export interface PlannedPartition {
  /** 1-based, as Linux names partitions (sda1, vda2). */
  number: number;
  name: string;
  typeGuid: string;
  uniqueGuid: string;
  attributes: bigint;
  firstLba: number;
  lastLba: number;
  offset: number;
  size: number;
}

export interface GptLayout {
  diskSize: number;
  diskGuid: string;
  firstUsableLba: number;
  lastUsableLba: number;
  partitions: PlannedPartition[];
}

/** The smallest disk holding partitions of these sizes with 1 MiB at each end. */
export function minimumDiskSize(sizes: readonly number[]): number {
  return ALIGNMENT + sizes.reduce((sum, s) => sum + alignUp(s, ALIGNMENT), 0) + ALIGNMENT;
}

function checkSpec(spec: PartitionSpec, index: number): void {
  const what = `partition ${index + 1} ("${spec.name}")`;
  if (!isGuid(spec.typeGuid)) throw new BasaltError('invalid', `${what}: type "${spec.typeGuid}" is not a GUID`);
  if (spec.uniqueGuid !== undefined && !isGuid(spec.uniqueGuid)) throw new BasaltError('invalid', `${what}: unique GUID "${spec.uniqueGuid}" is not a GUID`);
  if (spec.name.length > MAX_NAME_UNITS) throw new BasaltError('invalid', `${what}: the name is longer than GPT's ${MAX_NAME_UNITS} characters`);
  if (spec.size !== 'rest' && (!Number.isSafeInteger(spec.size) || spec.size <= 0)) throw new BasaltError('invalid', `${what}: size ${spec.size} is not a positive number of bytes`);
}

/** Places the partitions on the disk; throws 'usage' when they do not fit. */
export function planGpt(options: GptOptions): GptLayout {
  const { diskSize, partitions, seed } = options;
  if (!Number.isSafeInteger(diskSize) || diskSize % SECTOR !== 0 || diskSize < 3 * ALIGNMENT)
    throw new BasaltError('usage', `disk size ${diskSize} must be a multiple of ${SECTOR} bytes and at least 3 MiB`);
  if (partitions.length > ENTRY_COUNT) throw new BasaltError('usage', `a GPT holds at most ${ENTRY_COUNT} partitions, got ${partitions.length}`);
  if (partitions.filter((p) => p.size === 'rest').length > 1) throw new BasaltError('usage', 'only one partition can take the rest of the disk');
  partitions.forEach(checkSpec);

  const totalSectors = diskSize / SECTOR;
  const lastUsableLba = totalSectors - TAIL_SECTORS - 1;
  const end = alignDown((lastUsableLba + 1) * SECTOR, ALIGNMENT); // first byte partitions may not use
  const fixed = partitions.reduce((sum, p) => sum + (p.size === 'rest' ? 0 : alignUp(p.size, ALIGNMENT)), 0);
  const rest = end - ALIGNMENT - fixed;
  if (rest < 0 || (rest < ALIGNMENT && partitions.some((p) => p.size === 'rest')))
    throw new BasaltError('usage', `the partitions need ${formatBytes(fixed + ALIGNMENT * 2)} but the disk is ${formatBytes(diskSize)}`, { hint: 'give a larger disk size' });

  let offset = ALIGNMENT;
  const planned = partitions.map((spec, i): PlannedPartition => {
    const size = spec.size === 'rest' ? rest : alignUp(spec.size, ALIGNMENT);
    const p: PlannedPartition = {
      number: i + 1,
      name: spec.name,
      typeGuid: spec.typeGuid.toUpperCase(),
      uniqueGuid: (spec.uniqueGuid ?? deterministicGuid(seed, `partition:${i + 1}:${spec.name}`)).toUpperCase(),
      attributes: spec.attributes ?? 0n,
      firstLba: offset / SECTOR,
      lastLba: (offset + size) / SECTOR - 1,
      offset,
      size,
    };
    offset += size;
    return p;
  });
  return {
    diskSize,
    diskGuid: (options.diskGuid ?? deterministicGuid(seed, 'disk')).toUpperCase(),
    firstUsableLba: 2 + ARRAY_SECTORS,
    lastUsableLba,
    partitions: planned,
  };
}

function protectiveMbr(totalSectors: number): Buffer {
  const mbr = Buffer.alloc(SECTOR);
  const entry = 446;
  mbr[entry + 1] = 0x00; // CHS of LBA 1: head 0, sector 2, cylinder 0
  mbr[entry + 2] = 0x02;
  mbr[entry + 4] = 0xee; // GPT protective
  mbr.fill(0xff, entry + 5, entry + 8); // CHS end: past what CHS can address
  mbr.writeUInt32LE(1, entry + 8);
  mbr.writeUInt32LE(Math.min(totalSectors - 1, 0xffffffff), entry + 12);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  return mbr;
}

function partitionArray(layout: GptLayout): Buffer {
  const array = Buffer.alloc(ENTRY_COUNT * ENTRY_SIZE);
  for (const p of layout.partitions) {
    const at = (p.number - 1) * ENTRY_SIZE;
    guidToBytes(p.typeGuid).copy(array, at);
    guidToBytes(p.uniqueGuid).copy(array, at + 16);
    array.writeBigUInt64LE(BigInt(p.firstLba), at + 32);
    array.writeBigUInt64LE(BigInt(p.lastLba), at + 40);
    array.writeBigUInt64LE(p.attributes, at + 48);
    array.write(p.name, at + 56, MAX_NAME_UNITS * 2, 'utf16le');
  }
  return array;
}

function header(layout: GptLayout, myLba: number, alternateLba: number, arrayLba: number, arrayCrc: number): Buffer {
  const h = Buffer.alloc(SECTOR);
  h.write('EFI PART', 0, 'latin1');
  h.writeUInt32LE(0x00010000, 8);
  h.writeUInt32LE(HEADER_SIZE, 12);
  h.writeBigUInt64LE(BigInt(myLba), 24);
  h.writeBigUInt64LE(BigInt(alternateLba), 32);
  h.writeBigUInt64LE(BigInt(layout.firstUsableLba), 40);
  h.writeBigUInt64LE(BigInt(layout.lastUsableLba), 48);
  guidToBytes(layout.diskGuid).copy(h, 56);
  h.writeBigUInt64LE(BigInt(arrayLba), 72);
  h.writeUInt32LE(ENTRY_COUNT, 80);
  h.writeUInt32LE(ENTRY_SIZE, 84);
  h.writeUInt32LE(arrayCrc, 88);
  h.writeUInt32LE(crc32(h.subarray(0, HEADER_SIZE)), 16); // computed with its own field zero
  return h;
}

export interface GptBytes {
  /** LBA 0 through the end of the primary array. */
  head: Buffer;
  /** Backup array then backup header, written at `tailOffset`. */
  tail: Buffer;
  tailOffset: number;
}

export function gptBytes(layout: GptLayout): GptBytes {
  const totalSectors = layout.diskSize / SECTOR;
  const array = partitionArray(layout);
  const arrayCrc = crc32(array);
  const lastLba = totalSectors - 1;
  const backupArrayLba = lastLba - ARRAY_SECTORS;
  const head = Buffer.concat([protectiveMbr(totalSectors), header(layout, 1, lastLba, 2, arrayCrc), array]);
  const tail = Buffer.concat([array, header(layout, lastLba, 1, backupArrayLba, arrayCrc)]);
  return { head, tail, tailOffset: backupArrayLba * SECTOR };
}

/** Writes the partition table into an open disk image of `layout.diskSize` bytes. */
export async function writeGpt(disk: FileHandle, layout: GptLayout): Promise<void> {
  const { head, tail, tailOffset } = gptBytes(layout);
  await disk.write(head, 0, head.length, 0);
  await disk.write(tail, 0, tail.length, tailOffset);
}
