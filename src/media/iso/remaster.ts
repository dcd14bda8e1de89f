/**
 * mkksiso's job without root and without extracting the input: the input image is copied
 * through once, unchanged file data where it lies; edited boot configurations, the
 * kickstart and added files go after it with fresh directories and path tables; the
 * descriptors, the hybrid MBR/GPT and the El Torito EFI image are patched on the way; the
 * isomd5sum checksum is computed as the bytes pass.
 */
import { chmod, copyFile, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { BasaltError, ioError } from '../../oci/errors.js';
import { fsyncDir, makeTempDir, tempPathFor } from '../../oci/fsutil.js';
import { growFatImage, readFatFile, writeFatFile } from '../fat.js';
import { PVD, SECTOR, VD_PRIMARY, recordingDate, writeBoth32 } from './format.js';
import { IsoImage } from './reader.js';
import { contentFromPath, findNode, loadTree, putFile, type Content, type IsoTree } from './tree.js';
import { layoutTrees } from './layout.js';
import { configFlavor, editBootConfig, escapeLabel, type BootEdits } from './bootconfig.js';
import { moveHybridPartition, resizeHybridLayout } from './hybrid.js';
import { relocateBootEntry, type BootEntry } from './eltorito.js';
import { extentsOf } from './reader.js';
import { APPLICATION_USE_SIZE, IsoMd5Hasher, applicationUseOffset } from './isomd5.js';
import { ImageSink, writeAll, type Patch } from './output.js';

export interface RemasterOptions {
  input: string;
  output: string;
  kickstart?: string;
  /** Files and directories added at the ISO's root under their own names. */
  add?: string[];
  cmdline?: string[];
  removeArgs?: string[];
  volumeId?: string;
  replace?: [string, string][];
  updates?: string;
  md5?: boolean;
  /** Timestamp of new directory records (SOURCE_DATE_EPOCH); the descriptor's dates never change. */
  sourceDateEpoch?: number;
}

export interface RemasterReport {
  output: string;
  volumeId: string;
  configs: { path: string; kernelLines: number }[];
  efiImage: 'edited in place' | 'relocated' | 'no grub.cfg inside' | 'none';
  added: string[];
  bytes: number;
  md5?: string;
}

const MiB = 1024 * 1024;
/** Letters, digits, space, '_', '-', '.': ISO 9660's a-characters (plus lower case) that boot configurations can carry. */
const VOLUME_ID = /^[A-Za-z0-9 _.-]{1,32}$/;

export function validateVolumeId(id: string): void {
  if (id.length === 0 || Buffer.byteLength(id) > 32)
    throw new BasaltError('usage', `volume id "${id}" is ${Buffer.byteLength(id)} bytes; ISO 9660 allows 1 to 32`, { hint: 'give a shorter --volid' });
  if (!VOLUME_ID.test(id))
    throw new BasaltError('usage', `volume id "${id}" has characters ISO 9660 volume ids cannot carry`, { hint: 'use letters, digits, spaces, "_", "-" and "."' });
}

async function mustExist(path: string, what: string): Promise<void> {
  try {
    await stat(path);
  } catch (e) {
    throw ioError(`${what} ${path}`, e);
  }
}

/** Adds a local file or directory tree under `isoPath` to both trees, sharing the data. */
async function addLocal(trees: IsoTree[], local: string, isoPath: string, added: string[]): Promise<void> {
  const s = await stat(local).catch((e: unknown) => {
    throw ioError(`--add ${local}`, e);
  });
  if (s.isDirectory()) {
    for (const name of (await readdir(local)).sort()) await addLocal(trees, join(local, name), `${isoPath}/${name}`, added);
    return;
  }
  const content = await contentFromPath(local);
  for (const t of trees) putFile(t, isoPath, content);
  added.push(isoPath);
}

function findPrimaryDescriptorSector(image: IsoImage): number {
  const d = image.descriptors.find((v) => v.type === VD_PRIMARY);
  return (d as { sector: number }).sector;
}

export async function remasterIso(options: RemasterOptions): Promise<RemasterReport> {
  if (resolve(options.input) === resolve(options.output)) throw new BasaltError('usage', 'the output ISO must differ from the input ISO', { hint: 'write to a new file; the input is read while the output is written' });
  if (options.volumeId !== undefined) validateVolumeId(options.volumeId);
  if (options.kickstart !== undefined) await mustExist(options.kickstart, 'kickstart');
  if (options.updates !== undefined) await mustExist(options.updates, 'updates image');
  for (const a of options.add ?? []) await mustExist(a, '--add');

  const image = await IsoImage.open(options.input);
  const scratch = await makeTempDir('iso');
  try {
    return await remasterOpen(image, options, scratch);
  } finally {
    await image.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

async function remasterOpen(image: IsoImage, options: RemasterOptions, scratch: string): Promise<RemasterReport> {
  const info = image.info();
  const oldVolumeId = info.volumeId;
  const volumeId = options.volumeId ?? oldVolumeId;
  validateVolumeId(volumeId);
  const trees: IsoTree[] = [await loadTree(image, 'primary')];
  if (image.joliet) trees.push(await loadTree(image, 'joliet'));
  const primaryTree = trees[0] as IsoTree;

  const label = escapeLabel(volumeId);
  const added: string[] = [];
  const edits: BootEdits = { addArgs: [...(options.cmdline ?? [])], removeKeys: [...(options.removeArgs ?? [])], replacements: options.replace ?? [], volumeId: { from: oldVolumeId, to: volumeId } };
  if (options.kickstart !== undefined) {
    const name = basename(options.kickstart);
    const content = await contentFromPath(options.kickstart);
    for (const t of trees) putFile(t, `/${name}`, content);
    added.push(`/${name}`);
    edits.removeKeys.push('inst.ks', 'ks');
    edits.addArgs.push(`inst.ks=hd:LABEL=${label}:/${name}`);
  }
  if (options.updates !== undefined) {
    const content = await contentFromPath(options.updates);
    for (const t of trees) putFile(t, '/updates.img', content);
    added.push('/updates.img');
    edits.removeKeys.push('inst.updates');
    edits.addArgs.push(`inst.updates=hd:LABEL=${label}:/updates.img`);
  }
  for (const a of options.add ?? []) await addLocal(trees, a, `/${basename(resolve(a))}`, added);

  // Boot configurations: edited copies go in as new data, shared by both trees.
  const configs: { path: string; kernelLines: number }[] = [];
  const configPaths: string[] = [];
  await image.walk('primary', (path, entry) => {
    if (!entry.isDirectory && configFlavor(path)) configPaths.push(path);
  });
  for (const path of configPaths) {
    const entry = await image.lookup(path, 'primary');
    if (!entry) continue;
    const before = (await image.readFile(entry)).toString('latin1');
    const result = editBootConfig(before, configFlavor(path) as 'grub' | 'syslinux', edits);
    configs.push({ path, kernelLines: result.kernelLines });
    if (result.text === before) continue;
    const content: Content = { kind: 'buffer', data: Buffer.from(result.text, 'latin1') };
    for (const t of trees) if (findNode(t, path)) putFile(t, path, content);
  }
  if (!configs.some((c) => c.kernelLines > 0))
    throw new BasaltError('unsupported', `${image.path} has no boot configuration with a kernel command line (looked for grub.cfg in EFI/BOOT, boot/grub, boot/grub2 and isolinux/syslinux *.cfg)`, {
      hint: 'basalt remasters installer ISOs booted by GRUB or isolinux',
    });

  const patches: Patch[] = [];
  const efi = await editEfiImage(image, edits, scratch, patches, configs);
  // A relocated EFI image replaces the file that held it (if a directory names it) and is
  // placed with the new data; the catalog and partition entries follow it below.
  const extraContents: Content[] = [];
  if (efi.relocated) {
    const { content, entry } = efi.relocated;
    let holder: string | undefined;
    await image.walk('primary', (path, e) => {
      if (!e.isDirectory && extentsOf(e)[0]?.extent === entry.lba) holder ??= path;
    });
    if (holder) {
      for (const t of trees) if (findNode(t, holder)) putFile(t, holder, content);
    } else extraContents.push(content);
  }

  // Where new data goes: after everything the input holds (appended partitions included).
  const inputBytes = image.fileSize;
  const startLba = Math.ceil(inputBytes / SECTOR);
  const date = recordingDate(options.sourceDateEpoch !== undefined ? new Date(options.sourceDateEpoch * 1000) : new Date());
  const layout = layoutTrees(trees, startLba, { rockRidge: image.rockRidge, pxLength: image.pxLength, date, extraContents });
  const gptArrayBlocks = image.hybrid.gpt ? Math.ceil((image.hybrid.gpt.entryCount * image.hybrid.gpt.entrySize) / 512) : 0;
  let outputBytes = layout.endLba * SECTOR + (image.hybrid.gpt ? Math.ceil(((gptArrayBlocks + 1) * 512) / SECTOR) * SECTOR : 0);
  // Keep isohybrid's whole-cylinder size when the input had it.
  if (inputBytes % MiB === 0) outputBytes = Math.ceil(outputBytes / MiB) * MiB;

  let systemArea = image.systemArea;
  if (efi.relocated) {
    const { content, entry } = efi.relocated;
    const placed = layout.contents.find((c) => c.content === content);
    if (!placed || !image.catalog || !image.catalogSector) throw new Error('ISO writer: the relocated EFI image was not placed');
    const newSize = content.kind === 'buffer' ? content.data.length : content.size;
    const count = entry.sectorCount === 0 ? 0 : newSize / 512;
    patches.push({ offset: image.catalog.lba * SECTOR, data: relocateBootEntry(image.catalogSector, entry, placed.lba, count) });
    systemArea = moveHybridPartition(systemArea, entry.lba * 4, placed.lba * 4, newSize / 512);
  }
  const hybrid = resizeHybridLayout(systemArea, inputBytes, outputBytes);
  patches.push({ offset: 0, data: hybrid.systemArea });
  if (hybrid.oldBackupRange) patches.push({ offset: hybrid.oldBackupRange.start, data: Buffer.alloc(hybrid.oldBackupRange.end - hybrid.oldBackupRange.start) });

  const md5 = options.md5 !== false;
  const pvdSector = findPrimaryDescriptorSector(image);
  for (const d of image.descriptors) {
    const tree = d.type === VD_PRIMARY ? layout.trees.find((t) => t.kind === 'primary') : d.raw === image.joliet ? layout.trees.find((t) => t.kind === 'joliet') : undefined;
    if (!tree) continue;
    const vd = Buffer.from(d.raw);
    writeBoth32(vd, PVD.volumeSpaceSize, outputBytes / SECTOR);
    writeBoth32(vd, PVD.pathTableSize, tree.pathTableSize);
    vd.writeUInt32LE(tree.lPathTableLba, PVD.typeLPathTable);
    vd.writeUInt32LE(0, PVD.optTypeLPathTable);
    vd.writeUInt32BE(tree.mPathTableLba, PVD.typeMPathTable);
    vd.writeUInt32BE(0, PVD.optTypeMPathTable);
    tree.rootRecord.copy(vd, PVD.rootRecord);
    if (tree.kind === 'primary') {
      Buffer.from(volumeId.padEnd(32, ' '), 'latin1').copy(vd, PVD.volumeId);
      const app = vd.toString('latin1', PVD.applicationUse, PVD.applicationUse + 13);
      // A checksum of the input no longer holds: blank it (and implant a new one unless told not to).
      if (md5 || app === 'ISO MD5SUM = ') vd.fill(0x20, PVD.applicationUse, PVD.applicationUse + APPLICATION_USE_SIZE);
    } else {
      const ucs = Buffer.from(volumeId.slice(0, 16).padEnd(16, ' '), 'utf16le').swap16();
      ucs.copy(vd, PVD.volumeId);
    }
    patches.push({ offset: d.sector * SECTOR, data: vd });
  }

  const hasher = md5 ? new IsoMd5Hasher(outputBytes) : undefined;
  let appUse: Buffer | undefined;
  // The input's bytes go through the kernel (copy_file_range/sendfile, as cp does) while the
  // worker reads them for the checksum; then the patches are laid over the copy and the new
  // data appended through the handle. Temp file, fsync, rename: whole or not at all.
  const tmp = tempPathFor(options.output);
  try {
    await Promise.all([copyFile(options.input, tmp), hasher?.updateFromFile(options.input, 0, inputBytes, patches)]);
    await chmod(tmp, 0o644);
    const out = await open(tmp, 'r+');
    try {
      for (const p of patches) await writeAll(out, p.data, p.offset);
      const sink = new ImageSink(out, [], hasher, inputBytes);
      await sink.alignToSector();
      await sink.write({ kind: 'buffer', data: layout.metadata });
      for (const { content, lba } of layout.contents) {
        if (sink.offset !== lba * SECTOR) throw new Error(`ISO writer: data for sector ${lba} would land at byte ${sink.offset}`);
        await sink.write(content.kind === 'buffer' ? { kind: 'buffer', data: content.data } : { kind: 'file', path: content.path, size: content.size });
        await sink.alignToSector();
      }
      const tail = hybrid.backupGpt ?? Buffer.alloc(0);
      await sink.write({ kind: 'zeros', length: outputBytes - sink.offset - tail.length });
      if (tail.length) await sink.write({ kind: 'buffer', data: tail });
      await sink.finish();
      if (hasher) {
        appUse = await hasher.applicationUse();
        await writeAll(out, appUse, applicationUseOffset(pvdSector));
      }
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(tmp, options.output);
    await fsyncDir(dirname(resolve(options.output)));
  } catch (e) {
    await rm(tmp, { force: true });
    throw ioError(`writing ${options.output}`, e);
  } finally {
    await hasher?.close();
  }
  return {
    output: options.output,
    volumeId,
    configs,
    efiImage: efi.result,
    added,
    bytes: outputBytes,
    ...(appUse ? { md5: appUse.toString('latin1', 13, 45) } : {}),
  };
}

interface EfiEdit {
  result: RemasterReport['efiImage'];
  /** Set when the edited image no longer fit and was rebuilt larger, to go elsewhere. */
  relocated?: { content: Content; entry: BootEntry };
}

/** The grub.cfg locations inside an EFI image that Fedora-family and Debian installers use. */
const EFI_IMAGE_CONFIGS = ['/EFI/BOOT/grub.cfg', '/boot/grub/grub.cfg'];

/**
 * The El Torito UEFI image (efiboot.img) has its own grub.cfg on Fedora-family ISOs: edit
 * it inside the FAT image with mtools and lay the image back over its old place; when the
 * filesystem has no room, rebuild it larger to be placed with the new data.
 */
async function editEfiImage(image: IsoImage, edits: BootEdits, scratch: string, patches: Patch[], configs: { path: string; kernelLines: number }[]): Promise<EfiEdit> {
  const entry = image.catalog?.entries.find((e) => e.platform === 'uefi');
  if (!entry) return { result: 'none' };
  const bootSector = await image.readExtent(entry.lba, 512);
  if (bootSector[510] !== 0x55 || bootSector[511] !== 0xaa) return { result: 'none' };
  const bytesPerSector = bootSector.readUInt16LE(11);
  const sectors = bootSector.readUInt16LE(19) || bootSector.readUInt32LE(32);
  const size = bytesPerSector * sectors;
  if (![512, 1024, 2048, 4096].includes(bytesPerSector) || size === 0 || entry.lba * SECTOR + size > image.fileSize) return { result: 'none' };
  let fat = join(scratch, 'efiboot.img');
  await writeFile(fat, await image.readExtent(entry.lba, size));
  let edited = false;
  let grown = false;
  for (const path of EFI_IMAGE_CONFIGS) {
    const before = await readFatFile(fat, path, scratch);
    if (!before) continue;
    const result = editBootConfig(before.toString('latin1'), 'grub', edits);
    configs.push({ path: `efi-image:${path}`, kernelLines: result.kernelLines });
    if (result.text === before.toString('latin1')) continue;
    const data = Buffer.from(result.text, 'latin1');
    if (!(await writeFatFile(fat, path, data, scratch))) {
      const bigger = join(scratch, 'efiboot-grown.img');
      await growFatImage(fat, bigger, Math.ceil((size + Math.max(size / 4, 1024 * 1024) + data.length) / MiB) * MiB, scratch);
      fat = bigger;
      grown = true;
      if (!(await writeFatFile(fat, path, data, scratch))) throw new BasaltError('tool', `the grown EFI boot image of ${image.path} still has no room for ${path}`);
    }
    edited = true;
  }
  if (!edited) return { result: 'no grub.cfg inside' };
  const data = await readFile(fat);
  if (grown) return { result: 'relocated', relocated: { content: { kind: 'buffer', data }, entry } };
  patches.push({ offset: entry.lba * SECTOR, data });
  return { result: 'edited in place' };
}
