/**
 * Raw disk image → VMDK "streamOptimized" (VMware Virtual Disk Format 5.0), the variant
 * bootc-image-builder ships and vSphere/OVA imports: one file, deflate-compressed 64 KiB
 * grains each behind a grain marker, grain tables and the grain directory after the data,
 * then a footer (a copy of the header that knows where the directory is) and an
 * end-of-stream marker. All-zero grains are simply not written.
 */
import type { FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { deflateSync } from 'node:zlib';
import { openForReading } from '../oci/fsutil.js';
import { crc32 } from './crc32.js';
import { isAllZero, writeFully } from './sparse-copy.js';

const SECTOR = 512;
const GRAIN_SECTORS = 128;
const GRAIN = GRAIN_SECTORS * SECTOR; // 64 KiB
const GTES_PER_GT = 512;
const GT_SECTORS = (GTES_PER_GT * 4) / SECTOR; // 4
const DESCRIPTOR_SECTORS = 20;
/** The first grain starts after header and descriptor, on a grain boundary as VMware does. */
const OVERHEAD_SECTORS = GRAIN_SECTORS;
const GD_AT_END = 0xffffffffffffffffn;
const FLAG_NEWLINE_TEST = 1 << 0;
const FLAG_COMPRESSED = 1 << 16;
const FLAG_MARKERS = 1 << 17;
const MARKER_EOS = 0;
const MARKER_GT = 1;
const MARKER_GD = 2;
const MARKER_FOOTER = 3;

function sparseHeader(capacitySectors: number, gdOffsetSectors: bigint): Buffer {
  const h = Buffer.alloc(SECTOR);
  h.writeUInt32LE(0x564d444b, 0); // "KDMV"
  h.writeUInt32LE(3, 4); // version 3: streamOptimized
  h.writeUInt32LE(FLAG_NEWLINE_TEST | FLAG_COMPRESSED | FLAG_MARKERS, 8);
  h.writeBigUInt64LE(BigInt(capacitySectors), 12);
  h.writeBigUInt64LE(BigInt(GRAIN_SECTORS), 20);
  h.writeBigUInt64LE(1n, 28); // descriptor at sector 1
  h.writeBigUInt64LE(BigInt(DESCRIPTOR_SECTORS), 36);
  h.writeUInt32LE(GTES_PER_GT, 44);
  h.writeBigUInt64LE(0n, 48); // no redundant directory
  h.writeBigUInt64LE(gdOffsetSectors, 56);
  h.writeBigUInt64LE(BigInt(OVERHEAD_SECTORS), 64);
  h[72] = 0; // clean
  h.write('\n \r\n', 73, 'latin1'); // newline-corruption detection characters
  h.writeUInt16LE(1, 77); // deflate
  return h;
}

function metadataMarker(sectors: number, type: number): Buffer {
  const m = Buffer.alloc(SECTOR);
  m.writeBigUInt64LE(BigInt(sectors), 0);
  m.writeUInt32LE(0, 8);
  m.writeUInt32LE(type, 12);
  return m;
}

function descriptor(capacitySectors: number, cid: number, fileName: string): Buffer {
  const cylinders = Math.min(16383, Math.floor(capacitySectors / (16 * 63)));
  const text = [
    '# Disk DescriptorFile',
    'version=1',
    `CID=${cid.toString(16).padStart(8, '0')}`,
    'parentCID=ffffffff',
    'createType="streamOptimized"',
    '',
    '# Extent description',
    `RW ${capacitySectors} SPARSE "${fileName.replace(/"/g, '')}"`,
    '',
    '# The Disk Data Base',
    '#DDB',
    '',
    'ddb.virtualHWVersion = "4"',
    `ddb.geometry.cylinders = "${cylinders}"`,
    'ddb.geometry.heads = "16"',
    'ddb.geometry.sectors = "63"',
    'ddb.adapterType = "lsilogic"',
    '',
  ].join('\n');
  const buf = Buffer.alloc(DESCRIPTOR_SECTORS * SECTOR);
  buf.write(text, 0, 'utf8');
  return buf;
}

const padToSector = (n: number): number => Math.ceil(n / SECTOR) * SECTOR;

export interface VmdkStats {
  capacity: number;
  grains: number;
  fileSize: number;
}

/** Converts `rawPath` into `out` (an open, empty file); `outputName` goes in the descriptor. */
export async function writeStreamOptimizedVmdk(rawPath: string, out: FileHandle, outputName: string): Promise<VmdkStats> {
  const raw = await openForReading(rawPath);
  try {
    const rawSize = (await raw.stat()).size;
    const capacity = Math.ceil(rawSize / SECTOR);
    const grainCount = Math.ceil(rawSize / GRAIN);
    const tableCount = Math.ceil(grainCount / GTES_PER_GT);
    const tables = new Map<number, Buffer>();
    let position = OVERHEAD_SECTORS * SECTOR;
    let contentCrc = 0;
    let grains = 0;
    const grain = Buffer.alloc(GRAIN);
    for (let index = 0; index < grainCount; index++) {
      grain.fill(0);
      const { bytesRead } = await raw.read(grain, 0, Math.min(GRAIN, rawSize - index * GRAIN), index * GRAIN);
      if (isAllZero(grain.subarray(0, bytesRead))) continue;
      const compressed = deflateSync(grain.subarray(0, bytesRead));
      contentCrc = crc32(compressed, contentCrc);
      const record = Buffer.alloc(padToSector(12 + compressed.length));
      record.writeBigUInt64LE(BigInt(index * GRAIN_SECTORS), 0);
      record.writeUInt32LE(compressed.length, 8);
      compressed.copy(record, 12);
      await writeFully(out, record, position);
      const tableIndex = Math.floor(index / GTES_PER_GT);
      let table = tables.get(tableIndex);
      if (!table) tables.set(tableIndex, (table = Buffer.alloc(GT_SECTORS * SECTOR)));
      table.writeUInt32LE(position / SECTOR, (index % GTES_PER_GT) * 4);
      position += record.length;
      grains++;
    }
    const directory = Buffer.alloc(padToSector(tableCount * 4));
    for (const tableIndex of [...tables.keys()].sort((a, b) => a - b)) {
      await writeFully(out, metadataMarker(GT_SECTORS, MARKER_GT), position);
      position += SECTOR;
      directory.writeUInt32LE(position / SECTOR, tableIndex * 4);
      await writeFully(out, tables.get(tableIndex) as Buffer, position);
      position += GT_SECTORS * SECTOR;
    }
    await writeFully(out, metadataMarker(directory.length / SECTOR, MARKER_GD), position);
    position += SECTOR;
    const gdOffset = position / SECTOR;
    await writeFully(out, directory, position);
    position += directory.length;
    const tail = Buffer.concat([metadataMarker(1, MARKER_FOOTER), sparseHeader(capacity, BigInt(gdOffset)), metadataMarker(0, MARKER_EOS)]);
    await writeFully(out, tail, position);
    position += tail.length;
    await writeFully(out, Buffer.concat([sparseHeader(capacity, GD_AT_END), descriptor(capacity, contentCrc, basename(outputName))]), 0);
    return { capacity: capacity * SECTOR, grains, fileSize: position };
  } finally {
    await raw.close();
  }
}
