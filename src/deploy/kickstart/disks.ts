import { realpath, stat } from 'node:fs/promises';
import { BasaltError } from '../../oci/errors.js';
import { runTool } from '../../media/run-tool.js';
import { diskSize, existingContent } from '../../media/disk-device.js';
import { formatBytes } from '../../media/sizes.js';
import type { Kickstart } from './types.js';

/** A disk the installer could write: a block device, or a disk image file standing in for one. */
export interface DiskInfo {
  /** As named (kickstart or lsblk). */
  name: string;
  /** Absolute path, symlinks resolved. */
  path: string;
  size: number;
  kind: 'device' | 'file';
}

export interface DiskChoice {
  target: DiskInfo;
  /** What the disk holds now, when it holds something (clearpart must cover it). */
  holds?: string;
  /** Disks left out, and why. */
  excluded: { name: string; why: string }[];
}

/** Anaconda's names: `sda`, `disk/by-id/…`, `/dev/…`; basalt also takes the absolute path of a disk image file. */
export function diskPathOf(name: string): string {
  return name.startsWith('/') ? name : `/dev/${name}`;
}

export async function describeDisk(name: string): Promise<DiskInfo> {
  const path = await realpath(diskPathOf(name)).catch(() => {
    throw new BasaltError('not-found', `disk ${name} does not exist (looked for ${diskPathOf(name)})`, { hint: 'name a disk lsblk lists, or the path of a disk image file' });
  });
  const st = await stat(path);
  return { name, path, size: await diskSize(path), kind: st.isBlockDevice() ? 'device' : 'file' };
}

/** The machine's whole disks, writable, in lsblk's order (zram swap devices are not disks). */
export async function systemDisks(): Promise<DiskInfo[]> {
  const out = await runTool('lsblk', ['-J', '-b', '-d', '-o', 'PATH,SIZE,TYPE,RO']);
  const list = (JSON.parse(out.stdout) as { blockdevices?: { path: string; size: number | string; type: string; ro: boolean | string }[] }).blockdevices ?? [];
  return list
    .filter((d) => d.type === 'disk' && d.ro !== true && d.ro !== '1' && !/\/zram\d+$/.test(d.path))
    .map((d) => ({ name: d.path, path: d.path, size: Number(d.size), kind: 'device' as const }));
}

/** The boot medium and, when it is a partition, the disk holding it: neither may be written. */
export async function bootMediumPaths(bootMedium: string): Promise<Set<string>> {
  const path = await realpath(bootMedium).catch(() => bootMedium);
  const out = new Set([path]);
  const st = await stat(path).catch(() => undefined);
  if (st?.isBlockDevice()) {
    const parent = await runTool('lsblk', ['-n', '-o', 'PKNAME', path], { allowFailure: true });
    for (const p of parent.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '')) out.add(`/dev/${p}`);
  }
  return out;
}

export interface SelectOptions {
  /** The device the installer booted from (`--boot-medium`). */
  bootMedium?: string;
  /** Disks to choose from when the kickstart names none (default: lsblk's). */
  inventory?: () => Promise<DiskInfo[]>;
}

/** The disks the kickstart restricts the install to, in priority order: part --ondisk, ignoredisk --only-use, clearpart --drives. */
export function namedDisks(ks: Kickstart): string[] | undefined {
  const ondisk = ks.parts.find((p) => p.ondisk !== undefined)?.ondisk;
  if (ondisk !== undefined) {
    if (ks.onlyUse && !ks.onlyUse.includes(ondisk)) throw new BasaltError('invalid', `${ks.source}: part --ondisk=${ondisk} is not in ignoredisk --only-use (${ks.onlyUse.join(', ')})`);
    return [ondisk];
  }
  return ks.onlyUse ?? ks.clearpart?.drives;
}

/**
 * Picks the one disk to install onto, before anything is written: the kickstart's named disks
 * (or every disk of the machine), less the boot medium; the first left wins. A named disk that is
 * the boot medium is refused outright. A disk that holds data must be covered by clearpart.
 */
export async function selectTargetDisk(ks: Kickstart, options: SelectOptions = {}): Promise<DiskChoice> {
  const boot = options.bootMedium === undefined ? new Set<string>() : await bootMediumPaths(options.bootMedium);
  const named = namedDisks(ks);
  const excluded: DiskChoice['excluded'] = [];
  let candidates: DiskInfo[];
  if (named) {
    candidates = [];
    for (const name of named) {
      const disk = await describeDisk(name);
      if (boot.has(disk.path)) throw new BasaltError('usage', `${ks.source}: disk ${name} is the installer's boot medium (${options.bootMedium}); refusing to write it`, { hint: 'name another disk in the kickstart' });
      candidates.push(disk);
    }
  } else {
    candidates = [];
    for (const disk of await (options.inventory ?? systemDisks)()) {
      if (boot.has(disk.path)) excluded.push({ name: disk.name, why: 'the boot medium' });
      else candidates.push(disk);
    }
  }
  const target = candidates[0];
  if (!target) throw new BasaltError('not-found', `no disk to install onto${excluded.length ? ` (left out: ${excluded.map((e) => `${e.name}, ${e.why}`).join('; ')})` : ''}`, { hint: 'attach a disk, or name one with ignoredisk --only-use' });
  for (const other of candidates.slice(1)) excluded.push({ name: other.name, why: `not used: basalt installs onto one disk (${target.name})` });
  const holds = await existingContent(target.path);
  if (holds !== undefined) {
    const cp = ks.clearpart;
    const cleared = cp !== undefined && (cp.drives ? cp.drives.some((n) => diskPathOf(n) === target.name || n === target.name || diskPathOf(n) === target.path) : cp.all);
    if (!cleared) throw new BasaltError('usage', `disk ${target.name} holds ${holds} and the kickstart does not clear it`, { hint: 'add clearpart --all --initlabel (everything on the disk is lost)' });
  }
  return { target, ...(holds !== undefined ? { holds } : {}), excluded };
}

/** Refuses a disk smaller than the install needs (bytes), naming both sizes. */
export function checkDiskSize(disk: DiskInfo, needed: number): void {
  if (disk.size < needed) throw new BasaltError('usage', `disk ${disk.name} is too small: ${formatBytes(disk.size)}, the install needs ${formatBytes(needed)}`, { hint: 'use a larger disk' });
}
