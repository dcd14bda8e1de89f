/**
 * A partitioned raw disk image from filesystem images: GPT written in TypeScript, each
 * filesystem placed at its partition's offset sparsely. The disk appears whole or not at
 * all (temp file beside the output, fsync, rename).
 */
import { rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { makeTempDir, writeWithHandleAtomic } from '../oci/fsutil.js';
import { minimumDiskSize, planGpt, writeGpt, type PartitionSpec } from './gpt.js';
import { placeImage } from './sparse-copy.js';
import { createFatImage, estimateEspSize } from './fat.js';
import { createExt4Image, estimateExt4Size } from './ext4.js';
import { createXfsImage } from './xfs.js';

/** Root filesystems basalt makes: ext4 from a directory; xfs through a loop mount. */
export type RootFilesystem = 'ext4' | 'xfs';
import { deterministicGuid } from './guid.js';
import { PartitionType, rootTypeFor } from './partition-types.js';
import { statSize } from './stat-size.js';

export interface DiskPartitionContent {
  spec: PartitionSpec;
  /** Filesystem image written at the partition's start; absent leaves it zeroed. */
  image?: string;
}

export interface DiskPartition {
  number: number;
  name: string;
  typeGuid: string;
  offset: number;
  size: number;
  partUuid: string;
}

export interface AssembledDisk {
  path: string;
  size: number;
  diskGuid: string;
  partitions: DiskPartition[];
}

/** Writes `output` as a GPT disk holding the given images; `diskSize` defaults to the minimum. */
export async function assembleDisk(output: string, contents: readonly DiskPartitionContent[], seed: string, diskSize?: number): Promise<AssembledDisk> {
  const fixedSizes = contents.map((c) => (c.spec.size === 'rest' ? 1024 * 1024 : c.spec.size));
  const layout = planGpt({ diskSize: diskSize ?? minimumDiskSize(fixedSizes), partitions: contents.map((c) => c.spec), seed });
  await writeWithHandleAtomic(output, `disk image ${output}`, async (fh) => {
    await fh.truncate(layout.diskSize); // sparse: unwritten ranges read as zeros
    await writeGpt(fh, layout);
    for (const [i, c] of contents.entries()) {
      const p = layout.partitions[i];
      if (c.image && p) await placeImage(c.image, fh, p.offset, p.size);
    }
  });
  return {
    path: output,
    size: layout.diskSize,
    diskGuid: layout.diskGuid,
    partitions: layout.partitions.map((p) => ({ number: p.number, name: p.name, typeGuid: p.typeGuid, offset: p.offset, size: p.size, partUuid: p.uniqueGuid })),
  };
}

const ESP_NAME = 'EFI-SYSTEM';
const ROOT_NAME = 'root';

export interface CreateDiskImageOptions {
  /** The raw disk image to write. */
  path: string;
  /** ESP staging directory (EFI/BOOT/BOOTX64.EFI, loader/…, kernels). */
  espDir: string;
  /** Root filesystem tree (for ostree: the sysroot directory). */
  rootDir: string;
  rootSize?: number;
  espSize?: number;
  rootLabel: string;
  rootFsType: RootFilesystem;
  /** Makes disk, partition and filesystem identifiers reproducible. */
  seed: string;
  sourceDateEpoch?: number;
  /** Where the intermediate filesystem images go (default: beside `path`, same filesystem). */
  workDir?: string;
}

export interface CreatedDiskImage extends AssembledDisk {
  rootFsUuid: string;
  espVolumeId: string;
}

/** Identifiers derived from the seed, exposed so callers can write root=UUID=… before building. */
export function diskIdentifiers(seed: string): { rootFsUuid: string; rootHashSeed: string; espVolumeId: string; espPartUuid: string; rootPartUuid: string } {
  return {
    espPartUuid: deterministicGuid(seed, `partition:1:${ESP_NAME}`),
    rootPartUuid: deterministicGuid(seed, `partition:2:${ROOT_NAME}`),
    rootFsUuid: deterministicGuid(seed, 'root-filesystem').toLowerCase(),
    rootHashSeed: deterministicGuid(seed, 'root-filesystem-hash-seed').toLowerCase(),
    espVolumeId: createHash('sha256').update(`basalt-esp\0${seed}`).digest('hex').slice(0, 8).toUpperCase(),
  };
}

/** ESP + root disk, the layout bootc install to-disk makes (partitions "EFI-SYSTEM", "root"). */
export async function createDiskImage(options: CreateDiskImageOptions): Promise<CreatedDiskImage> {
  const ids = diskIdentifiers(options.seed);
  const work = await makeTempDir('disk', options.workDir ?? dirname(options.path));
  try {
    const espImage = join(work, 'esp.img');
    const rootImage = join(work, 'root.img');
    const [espSize, rootSize] = await Promise.all([options.espSize ?? estimateEspSize(options.espDir), options.rootSize ?? estimateExt4Size(options.rootDir)]);
    const epoch = options.sourceDateEpoch === undefined ? {} : { sourceDateEpoch: options.sourceDateEpoch };
    await Promise.all([
      createFatImage({ path: espImage, sourceDir: options.espDir, size: espSize, volumeId: ids.espVolumeId, ...epoch }),
      options.rootFsType === 'xfs'
        ? createXfsImage({ path: rootImage, sourceDir: options.rootDir, size: rootSize, label: options.rootLabel, uuid: ids.rootFsUuid })
        : createExt4Image({ path: rootImage, sourceDir: options.rootDir, size: rootSize, label: options.rootLabel, uuid: ids.rootFsUuid, hashSeed: ids.rootHashSeed, sizeFromUser: options.rootSize !== undefined, ...epoch }),
    ]);
    const disk = await assembleDisk(
      options.path,
      [
        { spec: { name: ESP_NAME, typeGuid: PartitionType.esp, uniqueGuid: ids.espPartUuid, size: await statSize(espImage) }, image: espImage },
        { spec: { name: ROOT_NAME, typeGuid: rootTypeFor(), uniqueGuid: ids.rootPartUuid, size: await statSize(rootImage) }, image: rootImage },
      ],
      options.seed,
    );
    return { ...disk, rootFsUuid: ids.rootFsUuid, espVolumeId: ids.espVolumeId };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
