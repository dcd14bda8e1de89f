/**
 * What the installer ISO boots: a dracut module that finds the medium by its volume label and
 * mounts the image's root (squashfs, read-only) under a tmpfs overlay, and the systemd units
 * that run the installer in a dedicated target instead of the appliance's own services.
 * Plain POSIX sh / bash text: none of this has Node until the root is mounted.
 */

/** The dracut module's directory (written into the exported root only while dracut runs). */
export const LIVE_MODULE_DIR = '90basalt-live';
/** Where the medium and the overlay layers are mounted; /run survives the switch to the root. */
export const LIVE_RUN_DIR = '/run/basalt-live';
export const MEDIUM_DIR = `${LIVE_RUN_DIR}/medium`;
/** Paths inside the ISO. */
export const ISO_PATHS = {
  kernel: 'live/vmlinuz',
  initrd: 'live/initrd.img',
  rootfs: 'live/rootfs.sfs',
  kickstart: 'ks.cfg',
  config: 'basalt/installer.conf',
  image: 'image',
  grubCfg: 'boot/grub/grub.cfg',
  biosImage: 'boot/grub/i386-pc/eltorito.img',
  efiImage: 'boot/grub/efiboot.img',
} as const;
export const INSTALLER_TARGET = 'basalt-installer.target';
/** The tag of the embedded image in the ISO's OCI layout. */
export const EMBEDDED_REF = 'embedded';

export const MODULE_SETUP = `#!/bin/bash
# basalt-live: written by basalt iso (installer ISOs); only included when asked for (--add).
check() { return 255; }
depends() { return 0; }
installkernel() {
    hostonly='' instmods squashfs overlay isofs loop sr_mod cdrom ahci ata_piix virtio_blk virtio_scsi virtio_pci usb_storage uas xhci_pci ehci_pci sd_mod
}
install() {
    inst_multiple mount umount mkdir sed cat ln
    inst_hook cmdline 90 "$moddir/basalt-live-cmdline.sh"
    inst_script "$moddir/basalt-live-setup.sh" /usr/sbin/basalt-live-setup
    inst_script "$moddir/basalt-live-generator.sh" "$systemdutildir/system-generators/basalt-live-generator"
}
`;

/** Sourced by dracut-cmdline: claims root=basalt-live:LABEL (dracut stops on a root= nobody claims). */
export const CMDLINE_HOOK = `#!/bin/sh
case "\${root:-}" in
  basalt-live:*)
    # shellcheck disable=SC2034
    rootok=1
    wait_for_dev -n "/dev/disk/by-label/\${root#basalt-live:}"
    ;;
esac
`;

/**
 * A systemd generator: systemd's fstab generator turns any root= into a sysroot.mount of that
 * "device"; this one's units, in the early directory, take precedence: sysroot.mount becomes
 * the overlay, after a service that mounts the medium, the squashfs and the tmpfs.
 */
export const GENERATOR = `#!/bin/sh
# Called with the normal, early and late unit directories: early ones win over the fstab generator's.
early=$2
root=
for arg in $(cat /proc/cmdline); do
  case "$arg" in root=*) root=\${arg#root=} ;; esac
done
case "$root" in basalt-live:*) ;; *) exit 0 ;; esac
label=\${root#basalt-live:}
device="dev-disk-by\\x2dlabel-$(printf '%s' "$label" | sed 's/-/\\\\x2d/g').device"
run=${LIVE_RUN_DIR}
cat > "$early/basalt-live-setup.service" <<UNIT
[Unit]
Description=basalt installer medium (LABEL=$label) and its root image
DefaultDependencies=no
Requires=$device
After=$device
Before=sysroot.mount
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/basalt-live-setup $label
UNIT
cat > "$early/sysroot.mount" <<UNIT
[Unit]
Description=basalt installer root (squashfs under a tmpfs overlay)
DefaultDependencies=no
Requires=basalt-live-setup.service
After=basalt-live-setup.service
Before=initrd-root-fs.target
[Mount]
What=basalt-live
Where=/sysroot
Type=overlay
Options=lowerdir=$run/lower,upperdir=$run/rw/upper,workdir=$run/rw/work
UNIT
mkdir -p "$early/initrd-root-fs.target.requires"
ln -sf ../sysroot.mount "$early/initrd-root-fs.target.requires/sysroot.mount"
`;

/** Run by basalt-live-setup.service: medium → squashfs (read-only) and the tmpfs for the overlay. */
export const SETUP_SCRIPT = `#!/bin/sh
set -e
label=$1
run=${LIVE_RUN_DIR}
say() { echo "basalt-live: $*" > /dev/kmsg 2>/dev/null || true; echo "basalt-live: $*"; }
mkdir -p "$run/medium" "$run/lower" "$run/rw"
say "mounting the installer medium LABEL=$label"
mount -t iso9660 -o ro "/dev/disk/by-label/$label" "$run/medium" || { say "cannot mount the medium LABEL=$label"; exit 1; }
[ -f "$run/medium/${ISO_PATHS.rootfs}" ] || { say "LABEL=$label has no /${ISO_PATHS.rootfs}"; exit 1; }
mount -t squashfs -o ro,loop "$run/medium/${ISO_PATHS.rootfs}" "$run/lower" || { say "cannot mount /${ISO_PATHS.rootfs}"; exit 1; }
mount -t tmpfs -o mode=0755 tmpfs "$run/rw"
mkdir -p "$run/rw/upper" "$run/rw/work"
`;

/** The target the kernel command line boots (systemd.unit=): sysinit, network, the installer; nothing else. */
export const TARGET_UNIT = `[Unit]
Description=basalt installer
Documentation=man:basalt(1)
Requires=sysinit.target
Wants=basalt-installer.service systemd-networkd.service systemd-resolved.service
After=sysinit.target basalt-installer.service
AllowIsolate=yes
`;

export const SERVICE_UNIT = `[Unit]
Description=basalt installer (kickstart from the installer medium)
After=sysinit.target systemd-networkd.service systemd-resolved.service
Conflicts=getty@tty1.service serial-getty@ttyS0.service

[Service]
Type=oneshot
ExecStart=/usr/libexec/basalt-installer
StandardInput=null
StandardOutput=journal
StandardError=journal
TimeoutStartSec=infinity
`;

/**
 * The installer: prints progress on the serial console and the first VT, runs
 * `basalt install kickstart` (which reboots by itself as the kickstart asks), and on failure
 * leaves the message on the consoles and a shell on tty2 for whoever is in front of the machine.
 */
export const INSTALLER_SCRIPT = `#!/bin/bash
# basalt-installer: written by basalt iso.
set -uo pipefail
medium=${MEDIUM_DIR}
consoles=()
for c in /dev/ttyS0 /dev/tty1; do
  if [ -c "$c" ] && (: > "$c") 2>/dev/null; then consoles+=("$c"); fi
done
say() {
  echo "basalt-installer: $*"
  for c in "\${consoles[@]}"; do printf 'basalt-installer: %s\\r\\n' "$*" > "$c" 2>/dev/null || true; done
}
fail() {
  say "FAILED: $*"
  say "the disks were left as the message above says; the log is in journalctl -u basalt-installer"
  exit 1
}
[ -r "$medium/${ISO_PATHS.config}" ] || fail "the installer medium is not mounted at $medium (no ${ISO_PATHS.config})"
embedded=
registries=
# shellcheck disable=SC1090
. "$medium/${ISO_PATHS.config}"
device=$(findmnt -n -o SOURCE "$medium") || fail "cannot tell which device $medium is mounted from"
say "started; boot medium $device"
args=(install kickstart "$medium/${ISO_PATHS.kickstart}" --boot-medium "$device")
if [ -n "$embedded" ]; then args+=(--embedded-image "oci:$medium/${ISO_PATHS.image}:$embedded"); say "installing from the image on the medium"; fi
if [ -n "$registries" ]; then args+=(--registries-conf /etc/containers/registries.conf); fi
# The network comes up in parallel; a registry install needs an address first.
if [ -z "$embedded" ]; then
  say "waiting for the network"
  /lib/systemd/systemd-networkd-wait-online --timeout=120 >/dev/null 2>&1 || say "no network after 120 s; trying anyway"
fi
say "running basalt \${args[*]}"
basalt "\${args[@]}" 2>&1 | while IFS= read -r line; do say "$line"; done
status=\${PIPESTATUS[0]}
[ "$status" -eq 0 ] || fail "basalt install kickstart exited with $status"
say "installation complete"
`;

/** Written on the ISO and sourced by the installer script: shell assignments only. */
export function installerConfig(options: { embedded: boolean; registriesConf: boolean }): string {
  return `# basalt installer settings (written by basalt iso)\nembedded=${options.embedded ? EMBEDDED_REF : ''}\nregistries=${options.registriesConf ? '1' : ''}\n`;
}

export function grubConfig(volumeId: string, title: string): string {
  const args = `root=basalt-live:${volumeId} systemd.unit=${INSTALLER_TARGET} console=tty0 console=ttyS0,115200 rd.shell=0 systemd.show_status=1`;
  return `# written by basalt iso
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=3
set default=0
menuentry '${title.replace(/'/g, '')}' {
  echo 'Loading the kernel and the installer initramfs...'
  linux /${ISO_PATHS.kernel} ${args}
  initrd /${ISO_PATHS.initrd}
}
`;
}

/** Embedded in both GRUB images: find the medium by label, then read /boot/grub/grub.cfg from it. */
export function grubEarlyConfig(volumeId: string): string {
  return `search --no-floppy --set=root --label ${volumeId}\nset prefix=($root)/boot/grub\n`;
}
