/**
 * A new ISO 9660 image from a file list: Rock Ridge names, an El Torito catalog with a BIOS
 * no-emulation entry (GRUB's eltorito.img, boot info table patched in) and a UEFI entry (a
 * FAT image), and a hybrid system area so the same file boots from a USB stick: GRUB's
 * boot_hybrid.img as MBR code, a protective MBR and a GPT whose EFI System partition is the
 * El Torito FAT image. The trees are laid out by layout.ts, as for a remaster.
 */
import { createHash } from 'node:crypto';
import { BasaltError } from '../../oci/errors.js';
import { writeWithHandleAtomic } from '../../oci/fsutil.js';
import { crc32 } from '../crc32.js';
import { deterministicGuid, guidToBytes } from '../guid.js';
import { PartitionType } from '../partition-types.js';
import { FLAG_DIRECTORY, PVD, SECTOR, SYSTEM_AREA_SECTORS, VD_BOOT, VD_PRIMARY, VD_TERMINATOR, encodeDirRecord, recordingDate, writeBoth16, writeBoth32 } from './format.js';
import { layoutTrees } from './layout.js';
import { ImageSink } from './output.js';
import { putFile, type Content, type IsoTree } from './tree.js';

export interface NewIsoOptions {
  output: string;
  /** d-characters, at most 32 (also the label udev and GRUB search for). */
  volumeId: string;
  /** Path inside the ISO → content. */
  files: Map<string, Content>;
  /** GRUB's i386-pc eltorito.img, by its path in `files` (its bytes must be a buffer). */
  biosImage?: string;
  /** GRUB's boot_hybrid.img (512 bytes): MBR code that chain-loads core.img from a USB stick. */
  mbrCode?: Buffer;
  /** The FAT image UEFI boots, by its path in `files`. */
  efiImage?: string;
  /** Seconds since the epoch for every date; the current time when absent. */
  sourceDateEpoch?: number;
}

export interface NewIsoResult {
  size: number;
  volumeSectors: number;
  biosLba?: number;
  efiLba?: number;
}

const BLOCK = 512;
const GPT_ENTRIES = 128;
const GPT_ARRAY_BLOCKS = (GPT_ENTRIES * 128) / BLOCK;
const MiB = 1024 * 1024;
const VD_START = SYSTEM_AREA_SECTORS; // 16: primary, 17: boot record, 18: terminator
const CATALOG_LBA = VD_START + 3;
const TREES_LBA = CATALOG_LBA + 1;

function text(buf: Buffer, offset: number, length: number, value: string): void {
  buf.fill(0x20, offset, offset + length);
  buf.write(value.slice(0, length), offset, 'latin1');
}

/** The 17-byte "YYYYMMDDHHMMSScc" + zone volume date. */
function volumeDate(date: Date | undefined): Buffer {
  if (!date) return Buffer.concat([Buffer.from('0000000000000000', 'latin1'), Buffer.from([0])]);
  const iso = date.toISOString();
  const digits = iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19) + iso.slice(20, 22);
  return Buffer.concat([Buffer.from(digits, 'latin1'), Buffer.from([0])]);
}

function descriptorHeader(type: number): Buffer {
  const vd = Buffer.alloc(SECTOR);
  vd[0] = type;
  vd.write('CD001', 1, 'latin1');
  vd[6] = 1;
  return vd;
}

/** SUSP "SP" and RRIP "ER" in the root's "." record: what tells readers Rock Ridge is there. */
function rootSystemUse(): Buffer {
  const sp = Buffer.from([0x53, 0x50, 7, 1, 0xbe, 0xef, 0]);
  const id = Buffer.from('RRIP_1991A', 'latin1');
  const er = Buffer.concat([Buffer.from([0x45, 0x52, 8 + id.length, 1, id.length, 0, 0, 1]), id]);
  const px = Buffer.alloc(44);
  px.write('PX', 0, 'latin1');
  px[2] = 44;
  px[3] = 1;
  writeBoth32(px, 4, 0o040555);
  writeBoth32(px, 12, 2);
  writeBoth32(px, 36, 0x7effffff);
  return Buffer.concat([sp, px, er]);
}

function bootCatalog(bios: { lba: number; sectors: number } | undefined, efi: { lba: number; sectors: number } | undefined): Buffer {
  const cat = Buffer.alloc(SECTOR);
  cat[0] = 1; // validation entry, platform 0 (x86) for the default entry
  cat.write('basalt', 4, 'latin1');
  cat[30] = 0x55;
  cat[31] = 0xaa;
  let sum = 0;
  for (let i = 0; i < 32; i += 2) sum = (sum + cat.readUInt16LE(i)) & 0xffff;
  cat.writeUInt16LE((0x10000 - sum) & 0xffff, 28);
  const entry = (offset: number, image: { lba: number; sectors: number } | undefined): void => {
    if (!image) return; // a zeroed default entry: not bootable
    cat[offset] = 0x88;
    cat.writeUInt16LE(Math.min(image.sectors, 0xffff), offset + 6);
    cat.writeUInt32LE(image.lba, offset + 8);
  };
  entry(32, bios);
  if (efi) {
    cat[64] = 0x91; // final section header
    cat[65] = 0xef;
    cat.writeUInt16LE(1, 66);
    entry(96, efi);
  }
  return cat;
}

/**
 * The boot info table mkisofs' -boot-info-table writes (GRUB's cdboot.img reads where it
 * lies from it), and GRUB's own patch (the "grub2-boot-info"): at byte 2548 the 512-byte
 * block where the rest of core.img starts, for booting the image as a hard disk.
 */
function patchBiosImage(image: Buffer, lba: number): void {
  if (image.length < 2560) throw new BasaltError('invalid', `the BIOS boot image is ${image.length} bytes; GRUB's eltorito.img is larger`);
  image.writeBigUInt64LE(BigInt(lba * 4 + 5), 2548);
  image.writeUInt32LE(VD_START, 8);
  image.writeUInt32LE(lba, 12);
  image.writeUInt32LE(image.length, 16);
  let sum = 0;
  for (let i = 64; i + 4 <= image.length; i += 4) sum = (sum + image.readUInt32LE(i)) >>> 0;
  image.writeUInt32LE(sum, 20);
}

function gptEntry(typeGuid: string, uniqueGuid: string, first: number, last: number, name: string): Buffer {
  const e = Buffer.alloc(128);
  guidToBytes(typeGuid).copy(e, 0);
  guidToBytes(uniqueGuid).copy(e, 16);
  e.writeBigUInt64LE(BigInt(first), 32);
  e.writeBigUInt64LE(BigInt(last), 40);
  e.write(name, 56, 'utf16le');
  return e;
}

function gptHeader(current: number, backup: number, entriesLba: number, lastBlock: number, diskGuid: string, arrayCrc: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write('EFI PART', 0, 'latin1');
  h.writeUInt32LE(0x00010000, 8);
  h.writeUInt32LE(92, 12);
  h.writeBigUInt64LE(BigInt(current), 24);
  h.writeBigUInt64LE(BigInt(backup), 32);
  h.writeBigUInt64LE(BigInt(2 + GPT_ARRAY_BLOCKS), 40);
  h.writeBigUInt64LE(BigInt(lastBlock - GPT_ARRAY_BLOCKS - 1), 48);
  guidToBytes(diskGuid).copy(h, 56);
  h.writeBigUInt64LE(BigInt(entriesLba), 72);
  h.writeUInt32LE(GPT_ENTRIES, 80);
  h.writeUInt32LE(128, 84);
  h.writeUInt32LE(arrayCrc, 88);
  h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
  return h;
}

/** MBR (code + one protective 0xEE entry, marked active for BIOSes that want one) and GPT. */
function hybridArea(totalBlocks: number, efi: { lba: number; bytes: number } | undefined, mbrCode: Buffer | undefined, biosLba: number | undefined, seed: string): { head: Buffer; tail: Buffer } {
  const area = Buffer.alloc(SYSTEM_AREA_SECTORS * SECTOR);
  if (mbrCode) {
    mbrCode.copy(area, 0, 0, 440);
    // boot_hybrid.img reads core.img from this 512-byte block: the one after cdboot.img.
    if (biosLba !== undefined) area.writeBigUInt64LE(BigInt(biosLba * 4 + 4), 0x1b0);
  }
  const lastBlock = totalBlocks - 1;
  area[446] = 0x80;
  area[446 + 1] = 0xff;
  area[446 + 2] = 0xff;
  area[446 + 3] = 0xff;
  area[446 + 4] = 0xee;
  area[446 + 5] = 0xff;
  area[446 + 6] = 0xff;
  area[446 + 7] = 0xff;
  area.writeUInt32LE(1, 446 + 8);
  area.writeUInt32LE(Math.min(lastBlock, 0xffffffff), 446 + 12);
  area[510] = 0x55;
  area[511] = 0xaa;
  const array = Buffer.alloc(GPT_ARRAY_BLOCKS * BLOCK);
  if (efi) {
    const first = efi.lba * 4;
    gptEntry(PartitionType.esp, deterministicGuid(seed, 'efi'), first, first + Math.ceil(efi.bytes / BLOCK) - 1, 'EFI System').copy(array, 0);
  }
  const arrayCrc = crc32(array);
  const diskGuid = deterministicGuid(seed, 'disk');
  gptHeader(1, lastBlock, 2, lastBlock, diskGuid, arrayCrc).copy(area, BLOCK);
  array.copy(area, 2 * BLOCK);
  const tail = Buffer.concat([array, gptHeader(lastBlock, 1, lastBlock - GPT_ARRAY_BLOCKS, lastBlock, diskGuid, arrayCrc)]);
  return { head: area, tail };
}

export function checkVolumeId(id: string): void {
  if (!/^[A-Z0-9_-]{1,32}$/.test(id)) throw new BasaltError('usage', `volume id "${id}" must be 1-32 upper-case letters, digits, "_" or "-"`, { hint: 'it is also the label the installer finds its medium by' });
}

export async function writeNewIso(options: NewIsoOptions): Promise<NewIsoResult> {
  checkVolumeId(options.volumeId);
  const date = options.sourceDateEpoch !== undefined ? new Date(options.sourceDateEpoch * 1000) : new Date();
  const recDate = recordingDate(date);
  const tree: IsoTree = { kind: 'primary', root: { kind: 'dir', name: '', children: [] } };
  tree.root.selfRecord = encodeDirRecord({ extent: 0, size: 0, flags: FLAG_DIRECTORY, identifier: Buffer.from([0]), date: recDate, systemUse: rootSystemUse() });
  for (const [path, content] of options.files) putFile(tree, path, content);
  const biosContent = options.biosImage ? options.files.get(options.biosImage) : undefined;
  const efiContent = options.efiImage ? options.files.get(options.efiImage) : undefined;
  if (options.biosImage && biosContent?.kind !== 'buffer') throw new BasaltError('usage', `the BIOS boot image ${options.biosImage} must be among the files, in memory`);
  if (options.efiImage && !efiContent) throw new BasaltError('usage', `the EFI boot image ${options.efiImage} is not among the files`);

  const layout = layoutTrees([tree], TREES_LBA, { rockRidge: true, pxLength: 44, date: recDate });
  const lbaOf = (content: Content | undefined): number | undefined => layout.contents.find((c) => c.content === content)?.lba;
  const biosLba = lbaOf(biosContent);
  const efiLba = lbaOf(efiContent);
  if (biosContent?.kind === 'buffer' && biosLba !== undefined) patchBiosImage(biosContent.data, biosLba);
  const efiBytes = efiContent ? (efiContent.kind === 'buffer' ? efiContent.data.length : efiContent.size) : 0;

  // The file is padded to whole MiB (as isohybrid does) with the backup GPT in its last blocks.
  const isoBytes = layout.endLba * SECTOR;
  const size = Math.ceil((isoBytes + (GPT_ARRAY_BLOCKS + 1) * BLOCK) / MiB) * MiB;
  const seed = createHash('sha256').update(options.volumeId).update(String(date.getTime())).digest('hex');
  const hybrid = hybridArea(size / BLOCK, efiLba !== undefined ? { lba: efiLba, bytes: efiBytes } : undefined, options.mbrCode, biosLba, seed);

  const pvd = descriptorHeader(VD_PRIMARY);
  text(pvd, PVD.systemId, 32, 'LINUX');
  text(pvd, PVD.volumeId, 32, options.volumeId);
  writeBoth32(pvd, PVD.volumeSpaceSize, layout.endLba);
  writeBoth16(pvd, 120, 1);
  writeBoth16(pvd, 124, 1);
  writeBoth16(pvd, 128, SECTOR);
  const t = layout.trees[0];
  if (!t) throw new Error('ISO layout returned no tree');
  writeBoth32(pvd, PVD.pathTableSize, t.pathTableSize);
  pvd.writeUInt32LE(t.lPathTableLba, PVD.typeLPathTable);
  pvd.writeUInt32BE(t.mPathTableLba, PVD.typeMPathTable);
  t.rootRecord.copy(pvd, PVD.rootRecord);
  text(pvd, PVD.volumeSetId, 128, options.volumeId);
  text(pvd, PVD.publisherId, 128, '');
  text(pvd, PVD.preparerId, 128, 'BASALT');
  text(pvd, PVD.applicationId, 128, 'BASALT INSTALLER');
  text(pvd, 702, 37 * 3, '');
  volumeDate(date).copy(pvd, PVD.creationDate);
  volumeDate(date).copy(pvd, PVD.modificationDate);
  volumeDate(undefined).copy(pvd, PVD.expirationDate);
  volumeDate(date).copy(pvd, PVD.effectiveDate);
  pvd[881] = 1;
  const boot = descriptorHeader(VD_BOOT);
  boot.write('EL TORITO SPECIFICATION', 7, 'latin1');
  boot.writeUInt32LE(CATALOG_LBA, 71);
  const terminator = descriptorHeader(VD_TERMINATOR);
  const catalog = bootCatalog(
    biosLba !== undefined ? { lba: biosLba, sectors: 4 } : undefined,
    efiLba !== undefined ? { lba: efiLba, sectors: Math.ceil(efiBytes / BLOCK) } : undefined,
  );

  await writeWithHandleAtomic(options.output, `the ISO ${options.output}`, async (fh) => {
    const sink = new ImageSink(fh, [], undefined);
    for (const data of [hybrid.head, pvd, boot, terminator, catalog, layout.metadata]) await sink.write({ kind: 'buffer', data });
    for (const { content, lba } of layout.contents) {
      const gap = lba * SECTOR - sink.offset;
      if (gap < 0) throw new Error('ISO layout: contents overlap');
      if (gap > 0) await sink.write({ kind: 'zeros', length: gap });
      await sink.write(content.kind === 'buffer' ? { kind: 'buffer', data: content.data } : { kind: 'file', path: content.path, size: content.size });
    }
    await sink.write({ kind: 'zeros', length: size - hybrid.tail.length - sink.offset });
    await sink.write({ kind: 'buffer', data: hybrid.tail });
    await sink.finish();
  });
  return { size, volumeSectors: layout.endLba, ...(biosLba !== undefined ? { biosLba } : {}), ...(efiLba !== undefined ? { efiLba } : {}) };
}
