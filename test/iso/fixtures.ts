/**
 * The two installer layouts the ISO tests remaster, made by tools basalt did not write:
 * - grub-mkrescue's hybrid image (GRUB for BIOS and UEFI, GPT + APM + protective MBR);
 * - the CentOS/Fedora layout: isolinux for BIOS, images/efiboot.img (FAT, made with
 *   mkfs.vfat + mtools, holding a GRUB EFI binary and its grub.cfg) for UEFI, put together
 *   by xorriso with lorax's own mkisofs arguments and a volume id with spaces.
 * Both carry a real Debian kernel and a tiny initramfs whose /init resolves
 * inst.ks=hd:LABEL=…:/path itself and prints the kickstart and /proc/cmdline.
 */
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cpioNewc } from '../harness/initramfs.js';
import { cacheKey, cachedFixture, debianKernel } from '../harness/vm.js';
import { requireTool, run } from '../harness/tools.js';

export const KS_BEGIN = 'BASALT-ISO-KICKSTART-BEGIN';
export const KS_END = 'BASALT-ISO-KICKSTART-END';
export const NO_KS = 'BASALT-ISO-NO-KICKSTART';
export const LORAX_VOLID = 'BASALT Test 9 x86_64';
export const GRUB_VOLID = 'BASALT_GRUB';

/** The modules the initramfs loads to reach an ISO on q35's AHCI CD-ROM (all =m in Debian's kernel). */
const MODULES = ['scsi_common', 'scsi_mod', 'libata', 'libahci', 'ahci', 'cdrom', 'sr_mod', 'isofs'];

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;

const INIT = `#!/bin/busybox sh
bb=/bin/busybox
$bb mkdir -p /proc /sys /mnt
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
for m in ${MODULES.join(' ')}; do $bb insmod /lib/modules/$m.ko; done
ks=
for w in $($bb cat /proc/cmdline); do
  case "$w" in inst.ks=*) ks="\${w#inst.ks=}";; esac
done
if [ -z "$ks" ]; then
  $bb echo ${NO_KS}
else
  rest="\${ks#hd:LABEL=}"
  # udev's \x20 for a space. Debian's GRUB 2.06 re-escapes backslashes on the way to the
  # kernel (\x20 arrives as \\x20, an unquoted one as x20); Fedora's passes \x20 intact.
  label="$($bb echo "\${rest%%:*}" | $bb sed -e 's/\\\\\\\\x20/ /g' -e 's/\\\\x20/ /g' -e 's/x20/ /g')"
  path="\${rest#*:}"
  found=
  for i in $($bb seq 1 60); do
    for dev in /dev/sr* /dev/sd* /dev/vd*; do
      [ -b "$dev" ] || continue
      l="$($bb dd if="$dev" bs=2048 skip=16 count=1 2>/dev/null | $bb dd bs=1 skip=40 count=32 2>/dev/null | $bb sed 's/ *$//')"
      if [ "$l" = "$label" ]; then found="$dev"; break 2; fi
    done
    $bb sleep 0.5
  done
  if [ -n "$found" ] && $bb mount -t iso9660 -o ro "$found" /mnt; then
    $bb echo ${KS_BEGIN}
    $bb cat "/mnt$path"
    $bb echo ${KS_END}
  else
    $bb echo "BASALT-ISO-LABEL-NOT-FOUND: $label"
  fi
fi
$bb printf "cmdline: %s\\n" "$($bb cat /proc/cmdline)"
$bb sleep 2
$bb poweroff -f
`;

/** The kernel and the module-loading initramfs, cached (the modules come from the kernel's own package). */
export async function kernelAndInitramfs(): Promise<{ kernel: string; initramfs: string }> {
  requireTool('busybox');
  const kernel = await debianKernel();
  const dir = await cachedFixture(cacheKey('iso-initramfs', { kernel, init: INIT, MODULES }), async (out) => {
    const pkg = /Depends:\s*(linux-image-[0-9][^\s]*-amd64)/.exec(run('apt-cache', ['depends', 'linux-image-amd64']))?.[1];
    if (!pkg) throw new Error('cannot find the kernel package behind linux-image-amd64');
    run('apt-get', ['download', '-q', pkg], { cwd: out });
    const deb = (await readdir(out)).find((f) => f.endsWith('.deb')) as string;
    run('dpkg-deb', ['-x', join(out, deb), join(out, 'x')]);
    const modules: { name: string; data: Buffer }[] = [];
    for (const m of MODULES) {
      const found = run('find', [join(out, 'x', 'lib', 'modules'), '-name', `${m}.ko`]).trim().split('\n')[0];
      if (!found) throw new Error(`${pkg} has no ${m}.ko`);
      modules.push({ name: m, data: await readFile(found) });
    }
    const cpio = cpioNewc([
      { name: 'bin', mode: S_IFDIR | 0o755 },
      { name: 'bin/busybox', mode: S_IFREG | 0o755, data: await readFile('/bin/busybox') },
      { name: 'dev', mode: S_IFDIR | 0o755 },
      { name: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 },
      { name: 'lib', mode: S_IFDIR | 0o755 },
      { name: 'lib/modules', mode: S_IFDIR | 0o755 },
      ...modules.map((m) => ({ name: `lib/modules/${m.name}.ko`, mode: S_IFREG | 0o644, data: m.data })),
      { name: 'init', mode: S_IFREG | 0o755, data: Buffer.from(INIT) },
    ]);
    await writeFile(join(out, 'initrd.img'), cpio);
    await rm(join(out, 'x'), { recursive: true, force: true });
    await rm(join(out, deb), { force: true });
  });
  return { kernel, initramfs: join(dir, 'initrd.img') };
}

function toolVersions(): string {
  return run('dpkg-query', ['-W', '-f', '${Package}=${Version} ', 'xorriso', 'grub-pc-bin', 'grub-efi-amd64-bin', 'isolinux', 'syslinux-common', 'mtools', 'dosfstools']);
}

/** grub-mkrescue's hybrid BIOS + UEFI image. */
export async function grubMkrescueIso(): Promise<string> {
  for (const t of ['grub-mkrescue', 'xorriso', 'mformat']) requireTool(t);
  const { kernel, initramfs } = await kernelAndInitramfs();
  const grubCfg = ['set timeout=1', "menuentry 'Install basalt test' {", '  linux /boot/vmlinuz console=ttyS0 quiet', '  initrd /boot/initrd.img', '}', ''].join('\n');
  const dir = await cachedFixture(cacheKey('iso-grub-mkrescue', { kernel, initramfs, grubCfg, v: toolVersions() }), async (out) => {
    const tree = join(out, 'tree');
    await mkdir(join(tree, 'boot', 'grub'), { recursive: true });
    await copyFile(kernel, join(tree, 'boot', 'vmlinuz'));
    await copyFile(initramfs, join(tree, 'boot', 'initrd.img'));
    await writeFile(join(tree, 'boot', 'grub', 'grub.cfg'), grubCfg);
    run('grub-mkrescue', ['-o', join(out, 'grub.iso'), tree, '--', '-volid', GRUB_VOLID]);
    await rm(tree, { recursive: true, force: true });
  });
  return join(dir, 'grub.iso');
}

/** Fedora's grub.cfg says linuxefi/initrdefi: Debian's GRUB has them in the linuxefi module. */
const GRUB_EFI_MODULES = ['part_gpt', 'part_msdos', 'fat', 'iso9660', 'normal', 'linux', 'linuxefi', 'search', 'search_label', 'configfile', 'echo', 'all_video', 'gzio', 'test'];

/** The CentOS/Fedora layout (isolinux + efiboot.img), built with lorax's mkisofs arguments. */
export async function loraxStyleIso(): Promise<string> {
  for (const t of ['xorriso', 'grub-mkimage', 'mkfs.vfat', 'mcopy', 'mmd']) requireTool(t);
  const { kernel, initramfs } = await kernelAndInitramfs();
  const stage2 = `inst.stage2=hd:LABEL=${LORAX_VOLID.replace(/ /g, '\\x20')}`;
  const grubCfg = [
    'set default=0',
    'set timeout=1',
    `search --no-floppy --set=root -l '${LORAX_VOLID}'`,
    "menuentry 'Install basalt test' --class fedora --class gnu-linux {",
    `  linuxefi /images/pxeboot/vmlinuz ${stage2} console=ttyS0 quiet`,
    '  initrdefi /images/pxeboot/initrd.img',
    '}',
    '',
  ].join('\n');
  const isolinuxCfg = [
    'serial 0 115200',
    'default linux',
    'timeout 10',
    'prompt 0',
    'label linux',
    '  menu label ^Install basalt test',
    '  kernel /images/pxeboot/vmlinuz',
    `  append initrd=/images/pxeboot/initrd.img ${stage2} console=ttyS0 quiet`,
    '',
  ].join('\n');
  const dir = await cachedFixture(cacheKey('iso-lorax-style', { kernel, initramfs, grubCfg, isolinuxCfg, GRUB_EFI_MODULES, v: toolVersions() }), async (out) => {
    const tree = join(out, 'tree');
    for (const d of ['isolinux', 'images/pxeboot', 'EFI/BOOT']) await mkdir(join(tree, d), { recursive: true });
    await copyFile(kernel, join(tree, 'images/pxeboot/vmlinuz'));
    await copyFile(initramfs, join(tree, 'images/pxeboot/initrd.img'));
    await copyFile('/usr/lib/ISOLINUX/isolinux.bin', join(tree, 'isolinux/isolinux.bin'));
    await copyFile('/usr/lib/syslinux/modules/bios/ldlinux.c32', join(tree, 'isolinux/ldlinux.c32'));
    await writeFile(join(tree, 'isolinux/isolinux.cfg'), isolinuxCfg);
    await writeFile(join(tree, 'EFI/BOOT/grub.cfg'), grubCfg);
    // GRUB EFI with its prefix in EFI/BOOT, the way Fedora's grubx64.efi looks for grub.cfg.
    const efi = join(tree, 'EFI/BOOT/BOOTX64.EFI');
    run('grub-mkimage', ['-O', 'x86_64-efi', '-p', '/EFI/BOOT', '-o', efi, ...GRUB_EFI_MODULES]);
    const img = join(tree, 'images/efiboot.img');
    run('mkfs.vfat', ['-C', img, '4096']);
    const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
    run('mmd', ['-i', img, '::/EFI', '::/EFI/BOOT'], { env });
    run('mcopy', ['-i', img, efi, join(tree, 'EFI/BOOT/grub.cfg'), '::/EFI/BOOT/'], { env });
    // lorax's x86 template: isohybrid MBR, isolinux El Torito, efiboot.img as the EFI El Torito image and a GPT partition.
    run('xorriso', [
      '-as', 'mkisofs', '-o', join(out, 'lorax.iso'),
      '-isohybrid-mbr', '/usr/lib/ISOLINUX/isohdpfx.bin',
      '-b', 'isolinux/isolinux.bin', '-c', 'isolinux/boot.cat', '-no-emul-boot', '-boot-load-size', '4', '-boot-info-table',
      '-eltorito-alt-boot', '-e', 'images/efiboot.img', '-no-emul-boot', '-isohybrid-gpt-basdat',
      '-R', '-J', '-V', LORAX_VOLID, '-graft-points', tree,
    ]);
    await rm(tree, { recursive: true, force: true });
  });
  return join(dir, 'lorax.iso');
}
