/**
 * GRUB for the installer ISO, from Debian's grub-pc-bin and grub-efi-amd64-bin: a BIOS
 * El Torito image (cdboot.img + core.img), boot_hybrid.img as MBR code for USB sticks, and
 * BOOTX64.EFI inside a small FAT image for UEFI. Both images carry the modules they need and
 * an early configuration that finds the medium by its label and reads /boot/grub/grub.cfg.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError, ioError } from '../../../oci/errors.js';
import { runTool } from '../../run-tool.js';
import { grubEarlyConfig } from './live.js';

const GRUB_DIR = '/usr/lib/grub';
const COMMON_MODULES = ['iso9660', 'part_gpt', 'part_msdos', 'fat', 'search', 'search_label', 'configfile', 'linux', 'normal', 'echo', 'serial', 'terminal', 'test', 'all_video', 'gzio', 'sleep'];

export interface GrubImages {
  biosImage: Buffer;
  mbrCode: Buffer;
  efiImage: string;
  efiBinary: string;
}

async function requireGrub(platform: string, pkg: string): Promise<void> {
  if (!(await stat(join(GRUB_DIR, platform, 'moddep.lst')).then(() => true, () => false)))
    throw new BasaltError('tool', `GRUB's ${platform} modules are not installed (${join(GRUB_DIR, platform)})`, { hint: `install the ${pkg} package (apt-get install ${pkg})` });
}

export async function buildGrubImages(dir: string, volumeId: string, epoch: number | undefined): Promise<GrubImages> {
  await requireGrub('i386-pc', 'grub-pc-bin');
  await requireGrub('x86_64-efi', 'grub-efi-amd64-bin');
  await mkdir(dir, { recursive: true });
  const early = join(dir, 'early.cfg');
  await writeFile(early, grubEarlyConfig(volumeId));
  const env = { ...process.env, ...(epoch !== undefined ? { SOURCE_DATE_EPOCH: String(epoch) } : {}) };
  const bios = join(dir, 'eltorito.img');
  await runTool('grub-mkimage', ['-O', 'i386-pc-eltorito', '-d', join(GRUB_DIR, 'i386-pc'), '-p', '/boot/grub', '-c', early, '-o', bios, 'biosdisk', ...COMMON_MODULES], { env });
  const efiBinary = join(dir, 'BOOTX64.EFI');
  await runTool('grub-mkimage', ['-O', 'x86_64-efi', '-d', join(GRUB_DIR, 'x86_64-efi'), '-p', '/boot/grub', '-c', early, '-o', efiBinary, 'efi_gop', 'efi_uga', ...COMMON_MODULES], { env });
  // A FAT image just large enough for the EFI binary (FAT12/16: no 33 MiB FAT32 minimum).
  const efiImage = join(dir, 'efiboot.img');
  const kib = Math.ceil(((await stat(efiBinary)).size + 512 * 1024) / 1024 / 64) * 64;
  await runTool('mkfs.vfat', ['--invariant', '-i', 'B4541150', '-n', 'BASALT-EFI', '-C', efiImage, String(kib)], { env });
  const mtoolsEnv = { ...env, MTOOLS_SKIP_CHECK: '1' };
  await runTool('mmd', ['-i', efiImage, '::/EFI', '::/EFI/BOOT'], { env: mtoolsEnv });
  await runTool('mcopy', ['-i', efiImage, '-m', efiBinary, '::/EFI/BOOT/BOOTX64.EFI'], { env: mtoolsEnv });
  try {
    return { biosImage: await readFile(bios), mbrCode: await readFile(join(GRUB_DIR, 'i386-pc/boot_hybrid.img')), efiImage, efiBinary };
  } catch (e) {
    throw ioError(`reading GRUB's images in ${dir}`, e);
  }
}
