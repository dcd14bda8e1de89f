import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ioError } from '../oci/errors.js';
import { runTool } from './run-tool.js';

/**
 * What keeps a basalt device bootable and lets it roll back by itself (docs/boot-safety.md):
 *
 * - a dracut module that, in the initramfs, recreates the ostree boot link the ESP entry names
 *   (`ostree=/ostree/boot.N/STATEROOT/BOOTCSUM/SERIAL`) from `basalt.deployment=` when a
 *   bootversion swap deleted it before the ESP mirror caught up;
 * - health checks (greenboot style) ordered before boot-complete.target, so a failing check keeps
 *   systemd-bless-boot from marking the boot good and systemd-boot's counter runs down;
 * - the automatic update timer, on bootc's schedule.
 */

/** The dracut module's directory name in /usr/lib/dracut/modules.d. */
export const DRACUT_MODULE_DIR = '50basalt';

/**
 * The boot-link hook. Plain POSIX sh (the initramfs has no Node). Takes its inputs from
 * BASALT_SYSROOT and BASALT_CMDLINE so tests can run it against a directory tree.
 */
export const BOOT_LINK_SCRIPT = `#!/bin/sh
# basalt-boot-link: written by basalt base build.
# Runs in the initramfs after /sysroot is mounted and before ostree-prepare-root. ostree deletes
# the old /ostree/boot.N links when it swaps its boot version; an ESP entry written before the
# swap (power cut before the ESP mirror ran) still names them. basalt.deployment= names the
# deployment itself, so the link can be made again exactly as ostree makes it:
#   /ostree/boot.N -> boot.N.M,  boot.N.M/STATEROOT/BOOTCSUM/SERIAL -> ../../../deploy/STATEROOT/deploy/CSUM.SERIAL
set -eu
set -f
sysroot=\${BASALT_SYSROOT:-/sysroot}
cmdline_file=\${BASALT_CMDLINE:-/proc/cmdline}

log() { echo "basalt-boot-link: $*"; }
fail() { log "error: $*"; exit 1; }

bootlink=
deployment=
for arg in $(cat "$cmdline_file"); do
  case "$arg" in
    ostree=*) bootlink=\${arg#ostree=} ;;
    basalt.deployment=*) deployment=\${arg#basalt.deployment=} ;;
  esac
done
[ -n "$bootlink" ] && [ -n "$deployment" ] || exit 0

IFS=/ read -r lead top bootdir stateroot bootcsum serial rest <<EOF
$bootlink
EOF
valid_name() { case "$1" in ''|.|..|*[!A-Za-z0-9_.-]*) return 1 ;; esac; }
[ -z "$lead" ] && [ "$top" = ostree ] && [ -z "$rest" ] || fail "ostree=$bootlink is not /ostree/boot.N/STATEROOT/BOOTCSUM/SERIAL"
case "$bootdir" in boot.0|boot.1) ;; *) fail "ostree=$bootlink: $bootdir is not boot.0 or boot.1" ;; esac
valid_name "$stateroot" || fail "ostree=$bootlink: bad stateroot"
case "$bootcsum" in *[!0-9a-f]*|'') fail "ostree=$bootlink: bad boot checksum" ;; esac
case "$serial" in *[!0-9]*|'') fail "ostree=$bootlink: bad serial" ;; esac

dstateroot=\${deployment%%/*}
dname=\${deployment#*/}
[ "$dstateroot" = "$stateroot" ] || fail "basalt.deployment=$deployment is not in stateroot $stateroot of ostree=$bootlink"
case "$dname" in *[!0-9a-f.]*|'') fail "basalt.deployment=$deployment is not STATEROOT/CHECKSUM.SERIAL" ;; esac
case "$dname" in *.*) ;; *) fail "basalt.deployment=$deployment is not STATEROOT/CHECKSUM.SERIAL" ;; esac

relative="deploy/$stateroot/deploy/$dname"
[ -d "$sysroot/ostree/$relative" ] || fail "deployment /ostree/$relative does not exist; this entry cannot boot"

link="$sysroot$bootlink"
if [ -e "$link" ]; then
  [ "$link" -ef "$sysroot/ostree/$relative" ] && exit 0
  # Two swaps without an ESP mirror in between: the link exists for another deployment. It is
  # shared with ostree's own entries, so it is left alone and ostree-prepare-root boots it.
  log "warning: $bootlink names another deployment than $deployment"
  exit 0
fi

remounted=
if ! touch "$sysroot/ostree/.basalt-boot-link" 2>/dev/null; then
  mount -o remount,rw "$sysroot" || fail "cannot make $sysroot writable to recreate $bootlink"
  remounted=1
fi
rm -f "$sysroot/ostree/.basalt-boot-link"

top_link="$sysroot/ostree/$bootdir"
if [ ! -e "$top_link" ]; then
  if [ -L "$top_link" ]; then
    target=$(readlink "$top_link")
    case "$target" in "$bootdir.0"|"$bootdir.1") ;; *) fail "$top_link points to $target, not $bootdir.0 or $bootdir.1" ;; esac
    mkdir -p "$sysroot/ostree/$target"
  else
    mkdir -p "$sysroot/ostree/$bootdir.0"
    ln -s "$bootdir.0" "$top_link"
  fi
fi
mkdir -p "$top_link/$stateroot/$bootcsum"
ln -sfn "../../../$relative" "$link"
sync
log "recreated $bootlink -> ../../../$relative"
if [ -n "$remounted" ]; then mount -o remount,ro "$sysroot" || true; fi
exit 0
`;

export const BOOT_LINK_UNIT = `# Written by basalt base build (dracut module basalt).
[Unit]
Description=basalt: recreate a missing ostree boot link
DefaultDependencies=no
ConditionKernelCommandLine=ostree
ConditionKernelCommandLine=basalt.deployment
ConditionPathExists=/etc/initrd-release
Requires=sysroot.mount
After=sysroot.mount
Before=ostree-prepare-root.service initrd-root-fs.target

[Service]
Type=oneshot
ExecStart=/usr/lib/basalt/basalt-boot-link
StandardOutput=journal+console
StandardError=journal+console
RemainAfterExit=yes
`;

/** dracut sources this; `check` returns 255 so the module is used only when asked for. */
export const DRACUT_MODULE_SETUP = `#!/bin/bash
# Written by basalt base build: recreates a missing ostree boot link before ostree-prepare-root.
check() {
    return 255
}

depends() {
    echo ostree systemd
    return 0
}

install() {
    inst_multiple cat ln mkdir readlink rm sync touch mount
    inst_simple "$moddir/basalt-boot-link.sh" /usr/lib/basalt/basalt-boot-link
    inst_simple "$moddir/basalt-boot-link.service" "$systemdsystemunitdir/basalt-boot-link.service"
    mkdir -p "\${initdir}\${systemdsystemconfdir}/initrd-root-fs.target.wants"
    ln_r "$systemdsystemunitdir/basalt-boot-link.service" "\${systemdsystemconfdir}/initrd-root-fs.target.wants/basalt-boot-link.service"
}
`;

/** So that initramfs rebuilds inside the image (kernel postinst) keep the module, as ostree.conf does for ostree. */
export const DRACUT_CONF = `# Written by basalt base build.
add_dracutmodules+=" basalt "
`;

/**
 * Health checks. Ordered before boot-complete.target and required by it: a failure keeps the
 * target from being reached, so systemd-bless-boot never marks the entry good. The command
 * itself reboots while systemd-boot has tries left (see docs/boot-safety.md).
 */
export const HEALTH_UNIT = `# Written by basalt base build.
[Unit]
Description=basalt health checks (/usr/lib/basalt/health.d, /etc/basalt/health.d)
ConditionPathExists=/run/ostree-booted
After=basic.target
Before=boot-complete.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/basalt health check
StandardOutput=journal+console
TimeoutStartSec=15min

[Install]
RequiredBy=boot-complete.target
WantedBy=multi-user.target
`;

/** bootc-fetch-apply-updates.service's job, with basalt. */
export const UPGRADE_SERVICE = `# Written by basalt base build. Turn automatic updates off with
#   systemctl disable --now basalt-upgrade.timer   (or: touch /etc/basalt/no-auto-update)
[Unit]
Description=basalt: fetch, stage and apply an update of the system image
ConditionPathExists=/run/ostree-booted
ConditionPathExists=!/etc/basalt/no-auto-update
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/bin/basalt upgrade --apply --quiet
`;

/** bootc-fetch-apply-updates.timer's schedule: an hour after boot, then every 8 h, with up to 2 h of jitter. */
export const UPGRADE_TIMER = `# Written by basalt base build. Change the schedule with a drop-in
# (/etc/systemd/system/basalt-upgrade.timer.d/*.conf); turn it off with
#   systemctl disable --now basalt-upgrade.timer   (or: touch /etc/basalt/no-auto-update)
[Unit]
Description=basalt: automatic updates of the system image
ConditionPathExists=/run/ostree-booted

[Timer]
OnBootSec=1h
OnUnitInactiveSec=8h
RandomizedDelaySec=2h

[Install]
WantedBy=timers.target
`;

/**
 * The ESP must be mounted for systemd-bless-boot to bless a boot. Mounting vfat asks the kernel
 * for nls_cp437 on demand; on a loaded machine that request can time out ("codepage cp437 not
 * found", seen under QEMU TCG) and /boot/efi stays unmounted. Loading them early avoids it.
 */
export const ESP_MODULES = `# Written by basalt base build: what mounting the ESP needs, loaded early.
vfat
nls_cp437
nls_ascii
`;

export const SAFETY_UNITS = ['basalt-health.service', 'basalt-upgrade.timer'] as const;

interface SafetyFile {
  path: string;
  content: string;
  mode: number;
}

export const SAFETY_FILES: readonly SafetyFile[] = [
  { path: `usr/lib/dracut/modules.d/${DRACUT_MODULE_DIR}/module-setup.sh`, content: DRACUT_MODULE_SETUP, mode: 0o755 },
  { path: `usr/lib/dracut/modules.d/${DRACUT_MODULE_DIR}/basalt-boot-link.sh`, content: BOOT_LINK_SCRIPT, mode: 0o755 },
  { path: `usr/lib/dracut/modules.d/${DRACUT_MODULE_DIR}/basalt-boot-link.service`, content: BOOT_LINK_UNIT, mode: 0o644 },
  { path: 'etc/dracut.conf.d/50-basalt.conf', content: DRACUT_CONF, mode: 0o644 },
  { path: 'usr/lib/modules-load.d/basalt-esp.conf', content: ESP_MODULES, mode: 0o644 },
  { path: 'usr/lib/systemd/system/basalt-health.service', content: HEALTH_UNIT, mode: 0o644 },
  { path: 'usr/lib/systemd/system/basalt-upgrade.service', content: UPGRADE_SERVICE, mode: 0o644 },
  { path: 'usr/lib/systemd/system/basalt-upgrade.timer', content: UPGRADE_TIMER, mode: 0o644 },
];

/** Writes the files above into the image root and enables the units. */
export async function installBootSafety(root: string): Promise<void> {
  try {
    for (const f of SAFETY_FILES) {
      await mkdir(dirname(join(root, f.path)), { recursive: true });
      await writeFile(join(root, f.path), f.content);
      await chmod(join(root, f.path), f.mode);
    }
    // Empty check directories, so users see where checks go.
    await mkdir(join(root, 'usr/lib/basalt/health.d'), { recursive: true });
    await mkdir(join(root, 'etc/basalt/health.d'), { recursive: true });
  } catch (e) {
    throw ioError(`writing the boot-safety units into ${root}`, e);
  }
  await runTool('chroot', [root, 'systemctl', 'enable', ...SAFETY_UNITS], { what: `enabling ${SAFETY_UNITS.join(', ')} in ${root}`, debianPackage: 'coreutils' });
}
