/**
 * The El Torito boot catalog: which images the firmware boots (BIOS no-emulation images
 * such as isolinux.bin or GRUB's eltorito.img, UEFI FAT images such as efiboot.img).
 */
import { SECTOR } from './format.js';

export type BootPlatform = 'bios' | 'uefi' | 'powerpc' | 'mac' | `0x${string}`;

export interface BootEntry {
  platform: BootPlatform;
  bootable: boolean;
  /** 0 none (no emulation), 1-3 floppy, 4 hard disk. */
  mediaType: number;
  /** Sectors of 512 bytes the firmware loads (0 often means "the whole image" for UEFI). */
  sectorCount: number;
  /** Where the image starts, in 2048-byte sectors. */
  lba: number;
  /** Byte offset of this 32-byte entry inside the catalog sector, to patch it. */
  catalogOffset: number;
}

export interface BootCatalog {
  lba: number;
  entries: BootEntry[];
}

function platformName(id: number): BootPlatform {
  if (id === 0) return 'bios';
  if (id === 0xef) return 'uefi';
  if (id === 1) return 'powerpc';
  if (id === 2) return 'mac';
  return `0x${id.toString(16).padStart(2, '0')}`;
}

/** The catalog's LBA from a boot record volume descriptor, or undefined if it is not El Torito. */
export function catalogLbaFromBootRecord(vd: Buffer): number | undefined {
  if (vd.toString('latin1', 7, 30) !== 'EL TORITO SPECIFICATION') return undefined;
  return vd.readUInt32LE(71);
}

function parseEntry(sector: Buffer, offset: number, platform: number): BootEntry {
  return {
    platform: platformName(platform),
    bootable: sector[offset] === 0x88,
    mediaType: (sector[offset + 1] as number) & 0x0f,
    sectorCount: sector.readUInt16LE(offset + 6),
    lba: sector.readUInt32LE(offset + 8),
    catalogOffset: offset,
  };
}

/** Parses the catalog sector; throws a RangeError describing what is wrong. */
export function parseBootCatalog(sector: Buffer, lba: number): BootCatalog {
  if (sector.length < SECTOR) throw new RangeError('the boot catalog is truncated');
  if (sector[0] !== 1 || sector[30] !== 0x55 || sector[31] !== 0xaa) throw new RangeError(`the boot catalog at sector ${lba} has no validation entry`);
  let sum = 0;
  for (let i = 0; i < 32; i += 2) sum = (sum + sector.readUInt16LE(i)) & 0xffff;
  if (sum !== 0) throw new RangeError(`the boot catalog at sector ${lba} fails its checksum`);
  const entries: BootEntry[] = [parseEntry(sector, 32, sector[1] as number)];
  let offset = 64;
  while (offset + 32 <= SECTOR) {
    const header = sector[offset] as number;
    if (header !== 0x90 && header !== 0x91) break;
    const platform = sector[offset + 1] as number;
    const count = sector.readUInt16LE(offset + 2);
    offset += 32;
    for (let i = 0; i < count && offset + 32 <= SECTOR; i++) {
      // Section entry extensions (0x44) carry no image of their own.
      if (sector[offset] !== 0x44) entries.push(parseEntry(sector, offset, platform));
      offset += 32;
    }
    if (header === 0x91) break;
  }
  return { lba, entries };
}

/** Patches an entry in a copy of the catalog sector to point at another image. */
export function relocateBootEntry(sector: Buffer, entry: BootEntry, lba: number, sectorCount: number): Buffer {
  const copy = Buffer.from(sector);
  copy.writeUInt32LE(lba, entry.catalogOffset + 8);
  copy.writeUInt16LE(Math.min(sectorCount, 0xffff), entry.catalogOffset + 6);
  return copy;
}
