import { BasaltError } from '../../oci/errors.js';
import { MiB } from '../../media/sizes.js';
import { MIN_ESP_SIZE } from '../../media/fat.js';
import type { RootFilesystem } from '../../media/disk-image.js';
import { namedDisks } from './disks.js';
import type { Kickstart, KsWarning } from './types.js';

/** What a kickstart will do, without touching anything: printed by --check and before an install. */
export interface KickstartPlan {
  /** What is installed (the embedded image, or ostreecontainer's --url as a transport name). */
  source: string;
  /** What the installed system updates from. */
  updateSource: string;
  stateroot: string;
  verifySignatures: boolean;
  /** The disks the kickstart names, or undefined: the first disk of the machine, boot medium excluded. */
  disks?: string[];
  clear: 'all' | string[] | 'none';
  esp: { sizeBytes?: number };
  root: { filesystem: RootFilesystem; sizeBytes?: number; grow: boolean };
  users: string[];
  rootPassword: 'set' | 'locked' | 'set and locked' | 'unchanged';
  sshKeys: string[];
  hostname?: string;
  timezone?: string;
  lang?: string;
  keymap?: string;
  kargs: string[];
  networks: string[];
  services: { enabled: string[]; disabled: string[] };
  scripts: { kind: 'pre' | 'post'; line: number; interpreter: string; nochroot: boolean; errorOnFail: boolean }[];
  finish: 'reboot' | 'poweroff' | 'halt' | 'none';
  warnings: KsWarning[];
}

/** ostreecontainer's --url and --transport as a basalt image name. */
export function imageNameOf(ks: Kickstart): string {
  const { url, transport } = ks.ostreecontainer;
  if (transport === 'oci') return `oci:${url}`;
  if (transport === 'oci-archive') return `oci-archive:${url}`;
  return url.startsWith('docker://') ? url : `docker://${url}`;
}

export function planKickstart(ks: Kickstart, options: { embeddedImage?: string } = {}): KickstartPlan {
  const root = ks.parts.find((p) => p.mountpoint === '/');
  if (!root) throw new BasaltError('invalid', `${ks.source}: no part / line`);
  const esp = ks.parts.find((p) => p.mountpoint === '/boot/efi');
  if (esp?.sizeMiB !== undefined && esp.sizeMiB * MiB < MIN_ESP_SIZE)
    throw new BasaltError('invalid', `${ks.source}:${esp.line}: part /boot/efi --size=${esp.sizeMiB} is below the ${MIN_ESP_SIZE / MiB} MiB an ESP needs`);
  const named = namedDisks(ks);
  const cp = ks.clearpart;
  const pw = ks.rootpw;
  const rootPassword = !pw ? 'unchanged' : pw.password !== undefined && pw.lock ? 'set and locked' : pw.lock ? 'locked' : 'set';
  return {
    source: options.embeddedImage ?? imageNameOf(ks),
    updateSource: imageNameOf(ks),
    stateroot: ks.ostreecontainer.stateroot,
    verifySignatures: ks.ostreecontainer.verifySignatures,
    ...(named ? { disks: named } : {}),
    clear: !cp ? 'none' : cp.drives ?? 'all',
    esp: esp?.sizeMiB !== undefined ? { sizeBytes: esp.sizeMiB * MiB } : {},
    root: { filesystem: root.fstype === 'xfs' ? 'xfs' : 'ext4', ...(root.sizeMiB !== undefined ? { sizeBytes: root.sizeMiB * MiB } : {}), grow: root.grow },
    users: ks.users.map((u) => u.name),
    rootPassword,
    sshKeys: ks.sshkeys.map((k) => k.username),
    ...(ks.hostname ? { hostname: ks.hostname } : {}),
    ...(ks.timezone ? { timezone: ks.timezone.zone } : {}),
    ...(ks.lang ? { lang: ks.lang } : {}),
    ...(ks.keyboard?.keymap ? { keymap: ks.keyboard.keymap } : {}),
    kargs: ks.kargs,
    networks: ks.networks.map((n) => `${n.device ?? 'any wired interface'}: DHCP`),
    services: ks.services,
    scripts: ks.scripts.map((s) => ({ kind: s.kind, line: s.line, interpreter: s.interpreter, nochroot: s.nochroot, errorOnFail: s.errorOnFail })),
    finish: ks.finish ?? 'none',
    warnings: ks.warnings,
  };
}
