/**
 * bootc install to-disk onto a real block device: the same GPT + ESP + ext4 layout basalt
 * writes into disk image files, written in place. The root filesystem is made directly on
 * the device by mke2fs at the partition's offset (no partition device nodes, no mounts), and
 * the root partition takes the rest of the device.
 */
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError, ioError } from '../oci/errors.js';
import { makeTempDir } from '../oci/fsutil.js';
import { planGpt, writeGpt } from './gpt.js';
import { placeImage, writeFully } from './sparse-copy.js';
import { createXfsImage } from './xfs.js';
import { createFatImage, estimateEspSize } from './fat.js';
import { createExt4Image, estimateExt4Size } from './ext4.js';
import { PartitionType, rootTypeFor } from './partition-types.js';
import { MiB, formatBytes } from './sizes.js';
import { runTool } from './run-tool.js';
import { diskIdentifiers, type CreateDiskImageOptions, type CreatedDiskImage } from './disk-image.js';

export async function isBlockDevice(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isBlockDevice(), () => false);
}

/** Size in bytes of a block device (stat reports 0 for them); blockdev is util-linux, always present. */
export async function blockDeviceSize(device: string): Promise<number> {
  const out = await runTool('blockdev', ['--getsize64', device]);
  const size = Number(out.stdout.trim());
  if (!Number.isSafeInteger(size) || size <= 0) throw new BasaltError('tool', `blockdev --getsize64 ${device} printed "${out.stdout.trim()}"`);
  return size;
}

/** What is on the device already, when something is: a partition table or non-zero first MiB. */
export async function existingContent(device: string): Promise<string | undefined> {
  const fh = await open(device, 'r').catch((e: unknown) => {
    throw ioError(`opening ${device}`, e);
  });
  try {
    const head = Buffer.alloc(MiB);
    const { bytesRead } = await fh.read(head, 0, MiB, 0);
    const data = head.subarray(0, bytesRead);
    if (data.subarray(512, 520).toString('latin1') === 'EFI PART') return 'a GPT partition table';
    if (data[510] === 0x55 && data[511] === 0xaa) return 'an MBR partition table or boot sector';
    return data.some((b) => b !== 0) ? 'data in its first MiB (a filesystem or other signature)' : undefined;
  } finally {
    await fh.close();
  }
}

export interface DeviceDiskOptions extends Omit<CreateDiskImageOptions, 'path'> {
  device: string;
  /** Overwrite whatever the device holds (bootc's --wipe); without it a used device is refused. */
  wipe?: boolean;
  /**
   * Accept an existing regular file as the disk, keeping its size (a kickstart install onto a
   * disk image file, as onto a device). Without it only block devices are accepted.
   */
  allowFile?: boolean;
}

/** The size of a disk: a block device's, or an existing file's (when files stand in for disks). */
export async function diskSize(path: string): Promise<number> {
  const st = await stat(path).catch((e: unknown) => {
    throw ioError(`disk ${path}`, e);
  });
  if (st.isBlockDevice()) return blockDeviceSize(path);
  if (st.isFile()) return st.size;
  throw new BasaltError('usage', `${path} is neither a block device nor a disk image file`);
}

/**
 * Writes ESP + root onto `device`. Everything that can fail on the inputs (sizes, the ESP
 * image) is checked and built before the device is touched.
 */
export async function createDiskOnDevice(options: DeviceDiskOptions): Promise<CreatedDiskImage> {
  const { device } = options;
  const isFile = !(await isBlockDevice(device));
  if (isFile && !options.allowFile) throw new BasaltError('usage', `${device} is not a block device`);
  const used = await existingContent(device);
  if (used && !options.wipe) throw new BasaltError('usage', `${device} holds ${used}`, { hint: 'pass --wipe to overwrite it (everything on it is lost)' });
  const ids = diskIdentifiers(options.seed);
  const deviceSize = await diskSize(device);
  const espSize = options.espSize ?? (await estimateEspSize(options.espDir));
  const needed = await estimateExt4Size(options.rootDir);
  const tooSmall = (): BasaltError =>
    new BasaltError('usage', `${device} is too small: ${formatBytes(deviceSize)}, the image needs a ${formatBytes(needed)} root partition plus a ${formatBytes(espSize)} ESP`, { hint: 'use a larger disk' });
  if (options.rootSize !== undefined && options.rootSize < needed)
    throw new BasaltError('usage', `a ${formatBytes(options.rootSize)} root partition is too small: the image needs ${formatBytes(needed)}`, { hint: 'give the root partition more room (or let it grow)' });
  // GPT headers and alignment take up to 2 MiB.
  if (deviceSize < Math.max(needed, options.rootSize ?? 0) + espSize + 2 * MiB) throw tooSmall();
  const layout = planGpt({
    diskSize: deviceSize,
    seed: options.seed,
    partitions: [
      { name: 'EFI-SYSTEM', typeGuid: PartitionType.esp, uniqueGuid: ids.espPartUuid, size: espSize },
      { name: 'root', typeGuid: rootTypeFor(), uniqueGuid: ids.rootPartUuid, size: options.rootSize ?? 'rest' },
    ],
  });
  const [esp, root] = layout.partitions;
  if (!esp || !root) throw new BasaltError('tool', 'internal: GPT plan without two partitions');
  if (root.size < needed) throw tooSmall();
  const work = await makeTempDir('device', options.workDir);
  try {
    const espImage = join(work, 'esp.img');
    const epoch = options.sourceDateEpoch === undefined ? {} : { sourceDateEpoch: options.sourceDateEpoch };
    await createFatImage({ path: espImage, sourceDir: options.espDir, size: esp.size, volumeId: ids.espVolumeId, ...epoch });
    const fh = await open(device, 'r+').catch((e: unknown) => {
      throw ioError(`opening ${device} for writing`, e);
    });
    try {
      // Old partition tables at both ends go first, then the new GPT; the ESP is written whole
      // (a FAT's zero blocks mean something, so stale bytes must not show through).
      await writeFully(fh, Buffer.alloc(MiB), 0);
      await writeFully(fh, Buffer.alloc(MiB), deviceSize - MiB);
      await writeGpt(fh, layout);
      await copyWhole(espImage, fh, esp.offset);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (options.rootFsType === 'xfs') {
      // mkfs.xfs cannot fill a tree in: the image is made by loop mount, then placed (zeros skipped: a fresh xfs reads no free space).
      const rootImage = join(work, 'root.img');
      await createXfsImage({ path: rootImage, sourceDir: options.rootDir, size: root.size, label: options.rootLabel, uuid: ids.rootFsUuid });
      const fh = await open(device, 'r+');
      try {
        await placeImage(rootImage, fh, root.offset, root.size);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } else await createExt4Image({ path: device, offset: root.offset, sourceDir: options.rootDir, size: root.size, label: options.rootLabel, uuid: ids.rootFsUuid, hashSeed: ids.rootHashSeed, ...epoch });
    // Let the kernel see the new partitions; a device without partition support is still fine.
    if (!isFile) await runTool('partx', ['-u', device], { allowFailure: true });
    return {
      path: device,
      size: deviceSize,
      diskGuid: layout.diskGuid,
      partitions: layout.partitions.map((p) => ({ number: p.number, name: p.name, typeGuid: p.typeGuid, offset: p.offset, size: p.size, partUuid: p.uniqueGuid })),
      rootFsUuid: ids.rootFsUuid,
      espVolumeId: ids.espVolumeId,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function copyWhole(source: string, dest: FileHandle, offset: number): Promise<void> {
  const src = await open(source, 'r');
  try {
    const buf = Buffer.alloc(MiB);
    for (let pos = 0; ; pos += MiB) {
      const { bytesRead } = await src.read(buf, 0, MiB, pos);
      if (bytesRead === 0) break;
      await writeFully(dest, buf.subarray(0, bytesRead), offset + pos);
    }
  } finally {
    await src.close();
  }
}
