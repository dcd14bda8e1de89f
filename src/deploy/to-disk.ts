import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { BasaltError } from '../oci/errors.js';
import { makeTempDir } from '../oci/fsutil.js';
import { createDiskImage, diskIdentifiers, type RootFilesystem } from '../media/disk-image.js';
import { createDiskOnDevice, existingContent, isBlockDevice } from '../media/disk-device.js';
import { installToFilesystem, type InstallOptions, type InstallResult } from './install.js';
import { deployDir, stateVarDir } from './sysroot.js';
import { createUsers, type InstallUser } from './users.js';

/** Where systemd-boot's EFI binary comes from: the image itself first, then this machine. */
const SYSTEMD_BOOT = 'usr/lib/systemd/boot/efi/systemd-bootx64.efi';

export interface InstallToDiskOptions extends Omit<InstallOptions, 'espDir' | 'rootMountSpec' | 'espMountSpec'> {
  /** Users to create (bootc-image-builder's config.toml). */
  users?: readonly InstallUser[];
  /** Root filesystem size in bytes (default: the tree plus slack). */
  rootSize?: number;
  /** Seed for partition and filesystem UUIDs (default: random per disk). */
  seed?: string;
  sourceDateEpoch?: number;
  /** Where to stage the trees (default: beside the output; for a block device, $TMPDIR). */
  workDir?: string;
  /** A block device that holds data is overwritten only with this (bootc's --wipe). */
  wipe?: boolean;
  /** Default ext4; xfs needs a loop mount and is for disk image files only. */
  filesystem?: RootFilesystem;
  /**
   * Write onto the existing disk (a block device, or a disk image FILE standing in for one) and
   * keep its size, as onto a device; `rootSize` then fixes the root partition instead of it
   * filling the disk. The kickstart installer's mode.
   */
  inPlace?: boolean;
  /** ESP size in bytes (default: what its files need, at least 64 MiB). */
  espSize?: number;
  /** Runs on the staged tree after the install, before any byte of the disk is written; throwing leaves the disk untouched. */
  beforeWrite?: (staged: StagedInstall) => Promise<void>;
}

/** The installed tree before it becomes the disk's filesystems. */
export interface StagedInstall {
  /** The physical root (the ostree sysroot). */
  sysroot: string;
  /** The deployment's root directory. */
  deployment: string;
  /** The stateroot's /var. */
  stateVar: string;
  /** Staging directory of the ESP's files. */
  espDir: string;
  result: InstallResult;
}

export interface InstallToDiskResult extends InstallResult {
  disk: string;
  size: number;
  rootPartUuid: string;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/**
 * bootc install to-disk, for a disk image file or a block device: the image is installed into a staging
 * directory that becomes the ext4 root (`mkfs.ext4 -d`), systemd-boot and the entries go
 * into a staging ESP (FAT via mtools), and both are placed into a GPT disk image. No mounts,
 * no loop devices, no privileged containers. The file appears whole or not at all.
 */
export async function installToDiskImage(diskPath: string, imageName: string, options: InstallToDiskOptions = {}): Promise<InstallToDiskResult> {
  const device = await isBlockDevice(diskPath);
  const inPlace = device || Boolean(options.inPlace);
  if (inPlace) {
    // Refuse a used device before the (long) install, and again just before writing.
    const used = await existingContent(diskPath);
    if (used && !options.wipe) throw new BasaltError('usage', `${diskPath} holds ${used}`, { hint: 'pass --wipe to overwrite it (everything on it is lost)' });
    if (options.filesystem === 'xfs' && !options.inPlace) throw new BasaltError('unsupported', `--filesystem xfs is made through a loop mount of a disk image file, not on the block device ${diskPath}`, { hint: 'use --filesystem ext4 on devices, or write an xfs disk image file and copy it' });
    if (options.rootSize !== undefined && !options.inPlace) throw new BasaltError('usage', `a root size was given, but on the block device ${diskPath} the root partition fills the device`, { hint: 'leave out --size' });
  } else if (!options.wipe && (await exists(diskPath))) throw new BasaltError('usage', `${diskPath} already exists`, { hint: 'remove it first (or pass --wipe)' });
  const seed = options.seed ?? `${diskPath}:${Date.now()}:${Math.random()}`;
  const ids = diskIdentifiers(seed);
  const work = await makeTempDir('to-disk', options.workDir ?? (device ? undefined : dirname(diskPath)));
  const root = join(work, 'root');
  const esp = join(work, 'esp');
  try {
    await mkdir(root);
    const { users, rootSize, sourceDateEpoch, workDir: _w, seed: _s, wipe, filesystem, inPlace: _i, espSize, beforeWrite, ...install } = options;
    const result = await installToFilesystem(root, imageName, { ...install, espDir: esp, rootMountSpec: `PARTUUID=${ids.rootPartUuid.toLowerCase()}`, espMountSpec: `PARTUUID=${ids.espPartUuid.toLowerCase()}` });
    const { checksum, deploySerial } = result.deployment;
    const deployment = deployDir(root, result.stateroot, checksum, deploySerial);
    if (users?.length) await createUsers(deployment, stateVarDir(root, result.stateroot), users);
    const fromImage = join(deployment, SYSTEMD_BOOT);
    const bootloader = (await exists(fromImage)) ? fromImage : `/${SYSTEMD_BOOT}`;
    if (!(await exists(bootloader)))
      throw new BasaltError('tool', `no systemd-boot EFI binary: the image has no /${SYSTEMD_BOOT} and neither has this machine`, { hint: 'add systemd-boot-efi to the image (basalt base build does) or install it here' });
    for (const dest of ['EFI/BOOT/BOOTX64.EFI', 'EFI/systemd/systemd-bootx64.efi']) {
      await mkdir(dirname(join(esp, dest)), { recursive: true });
      await copyFile(bootloader, join(esp, dest));
    }
    if (beforeWrite) await beforeWrite({ sysroot: root, deployment, stateVar: stateVarDir(root, result.stateroot), espDir: esp, result });
    const epoch = sourceDateEpoch !== undefined ? { sourceDateEpoch } : {};
    if (inPlace) {
      const sizes = { ...(rootSize !== undefined ? { rootSize } : {}), ...(espSize !== undefined ? { espSize } : {}) };
      const written = await createDiskOnDevice({ device: diskPath, allowFile: true, espDir: esp, rootDir: root, rootLabel: 'root', rootFsType: filesystem ?? 'ext4', seed, workDir: work, wipe: Boolean(wipe), ...sizes, ...epoch });
      return { ...result, disk: written.path, size: written.size, rootPartUuid: ids.rootPartUuid.toLowerCase() };
    }
    const disk = await createDiskImage({
      path: diskPath,
      espDir: esp,
      rootDir: root,
      rootLabel: 'root',
      rootFsType: filesystem ?? 'ext4',
      seed,
      workDir: work,
      ...(rootSize !== undefined ? { rootSize } : {}),
      ...(espSize !== undefined ? { espSize } : {}),
      ...epoch,
    });
    return { ...result, disk: disk.path, size: disk.size, rootPartUuid: ids.rootPartUuid.toLowerCase() };
  } finally {
    await removeStaging(work, root);
  }
}

/**
 * ostree marks deployment directories immutable; lift that before removing the staging tree.
 * A staging tree with something still mounted in it (a kickstart %post's /dev bind mount that
 * would not unmount) is left in place: removing it would delete the host's files through the mount.
 */
async function removeStaging(work: string, root: string): Promise<void> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '');
  if (mounts.split('\n').some((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' ').startsWith(`${work}/`))) return;
  await new Promise<void>((resolve) => execFile('chattr', ['-R', '-f', '-i', root], () => resolve()));
  await rm(work, { recursive: true, force: true });
}
