import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ioError } from '../oci/errors.js';
import { runTool } from './run-tool.js';

/**
 * systemd units for updates on the device (written into base images by configure.ts).
 *
 * basalt-esp-mirror.service keeps the ESP (which systemd-boot reads) in line with ostree's
 * boot entries under /boot at shutdown. A staged deployment is written by ostree in the
 * ExecStop of ostree-finalize-staged.service; units stop in the reverse of their start order,
 * so being ordered Before= that service makes this unit stop *after* it, and the mirror runs
 * in this unit's own ExecStop, once the new entries exist. Its ExecStart does nothing: a
 * first version mirrored there too and, ordered before basic.target like ostree's unit,
 * held the boot up by more than a minute under TCG (Node starting on an emulated CPU).
 * RequiresMountsFor keeps /boot/efi and /sysroot mounted until it is done;
 * DefaultDependencies=no and Conflicts=final.target mirror ostree's own unit, so it is
 * stopped in the same phase of shutdown as the finalisation.
 *
 * basalt-esp-reconcile.service mirrors once at every boot (repairing an ESP left behind by a
 * power cut during a shutdown mirror), off the boot's critical path: wanted by
 * multi-user.target but not ordered before it, so logins do not wait for it.
 */
export const ESP_MIRROR_UNIT_NAME = 'basalt-esp-mirror.service';
export const ESP_RECONCILE_UNIT_NAME = 'basalt-esp-reconcile.service';

export const ESP_MIRROR_UNIT = `# Written by basalt base build.
[Unit]
Description=Mirror ostree boot entries onto the ESP at shutdown, after ostree finalises
ConditionPathExists=/run/ostree-booted
DefaultDependencies=no
RequiresMountsFor=/sysroot /boot /boot/efi
After=local-fs.target
Before=ostree-finalize-staged.service basic.target final.target
Conflicts=final.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/usr/bin/basalt internal esp-mirror
TimeoutStopSec=5min

[Install]
WantedBy=multi-user.target
`;

export const ESP_RECONCILE_UNIT = `# Written by basalt base build.
[Unit]
Description=Mirror ostree boot entries onto the ESP (reconcile at boot)
ConditionPathExists=/run/ostree-booted
RequiresMountsFor=/sysroot /boot /boot/efi
# systemd-bless-boot renames the booted entry; a mirror rewriting it at the same time would
# write the old name back beside the renamed file (two entries for one deployment).
Before=systemd-bless-boot.service

[Service]
Type=oneshot
ExecStart=/usr/bin/basalt internal esp-mirror

[Install]
WantedBy=multi-user.target
`;

/** Unit files to install under /usr/lib/systemd/system, by name. */
export const UPDATE_UNITS: ReadonlyArray<readonly [string, string]> = [
  [ESP_MIRROR_UNIT_NAME, ESP_MIRROR_UNIT],
  [ESP_RECONCILE_UNIT_NAME, ESP_RECONCILE_UNIT],
];

/** Units to enable (systemctl enable in the image). */
export const UPDATE_UNITS_ENABLED: readonly string[] = [ESP_MIRROR_UNIT_NAME, ESP_RECONCILE_UNIT_NAME];

/** Writes the update units into an image root and enables them (systemctl in a chroot only makes symlinks). */
export async function installUpdateUnits(root: string): Promise<void> {
  try {
    await mkdir(join(root, 'usr/lib/systemd/system'), { recursive: true });
    for (const [name, text] of UPDATE_UNITS) await writeFile(join(root, 'usr/lib/systemd/system', name), text);
  } catch (e) {
    throw ioError(`writing update units into ${root}`, e);
  }
  await runTool('chroot', [root, 'systemctl', 'enable', ...UPDATE_UNITS_ENABLED], { what: `enabling ${UPDATE_UNITS_ENABLED.join(', ')} in ${root}`, debianPackage: 'systemd' });
}
