/**
 * Edits of installer boot configurations, as mkksiso makes them: kernel arguments on every
 * boot entry (GRUB `linux`/`linuxefi`/`linux16` lines, isolinux/syslinux `append` lines),
 * the kickstart location, the volume id wherever the configuration names it, and plain
 * text replacements.
 */
export interface BootEdits {
  /** Arguments appended to every kernel command line (an identical one is not repeated). */
  addArgs: string[];
  /** Argument keys removed from every kernel command line (`quiet`, `inst.stage2`). */
  removeKeys: string[];
  /** Literal replacements, applied first. */
  replacements: [string, string][];
  /** Volume id change: every mention of the old id (plain or \x20-escaped) becomes the new one. */
  volumeId?: { from: string; to: string };
}

/** A volume id as kernel arguments carry it (`hd:LABEL=Fedora\x20S\x20dvd`): spaces escaped as udev does. */
export function escapeLabel(volumeId: string): string {
  return volumeId.replace(/ /g, '\\x20');
}

function argKey(arg: string): string {
  const eq = arg.indexOf('=');
  return eq < 0 ? arg : arg.slice(0, eq);
}

/** Splits a kernel command line into words, keeping double-quoted values whole. */
function splitArgs(text: string): string[] {
  return text.match(/(?:[^\s"]+|"[^"]*")+/g) ?? [];
}

function editArgs(args: string[], edits: BootEdits): string[] {
  const removed = new Set(edits.removeKeys);
  const kept = args.filter((a) => !removed.has(argKey(a)) && !edits.addArgs.includes(a));
  return [...kept, ...edits.addArgs];
}

/** GRUB: `linux`, `linuxefi`, `linux16` lines (`linux /vmlinuz arg...`). */
const GRUB_KERNEL = /^(\s*)(linux|linuxefi|linux16)(\s+)(\S+)(.*)$/;
/** isolinux/syslinux: `append` lines (any case), where `initrd=` also lives. */
const SYSLINUX_APPEND = /^(\s*)(append)(\s+)(.*)$/i;

export type ConfigFlavor = 'grub' | 'syslinux';

export interface EditResult {
  text: string;
  /** How many kernel command lines were edited. */
  kernelLines: number;
}

export function editBootConfig(text: string, flavor: ConfigFlavor, edits: BootEdits): EditResult {
  let out = text;
  for (const [from, to] of edits.replacements) out = out.split(from).join(to);
  if (edits.volumeId && edits.volumeId.from !== edits.volumeId.to) {
    const { from, to } = edits.volumeId;
    out = out.split(escapeLabel(from)).join(escapeLabel(to));
    // GRUB also names the volume in `search --label 'ID'` or `-l "ID"`, quoted or not.
    if (from.includes(' ')) out = out.split(from).join(to);
    else out = out.replace(new RegExp(`(?<![A-Za-z0-9_.-])${escapeRegExp(from)}(?![A-Za-z0-9_.-])`, 'g'), to);
  }
  let kernelLines = 0;
  const lines = out.split('\n').map((line) => {
    if (flavor === 'grub') {
      const m = GRUB_KERNEL.exec(line);
      if (!m) return line;
      kernelLines++;
      return `${m[1]}${m[2]}${m[3]}${m[4]} ${editArgs(splitArgs(m[5] ?? ''), edits).join(' ')}`.trimEnd();
    }
    const m = SYSLINUX_APPEND.exec(line);
    if (!m) return line;
    kernelLines++;
    return `${m[1]}${m[2]}${m[3]}${editArgs(splitArgs(m[4] ?? ''), edits).join(' ')}`.trimEnd();
  });
  return { text: lines.join('\n'), kernelLines };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Which configuration files in an ISO basalt edits, by their path. */
export function configFlavor(path: string): ConfigFlavor | undefined {
  const p = path.toLowerCase();
  if (/^\/(efi\/boot|boot\/grub2?)\/grub\.cfg$/.test(p)) return 'grub';
  if (/^\/(isolinux|syslinux|boot\/isolinux|boot\/syslinux)\/[^/]+\.cfg$/.test(p)) return 'syslinux';
  return undefined;
}
