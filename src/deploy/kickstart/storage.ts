import { listValue, parseOptions } from './options.js';
import { invalid, once, type Draft } from './draft.js';
import type { OstreeTransport, Partition } from './types.js';

/** ostreecontainer, clearpart, ignoredisk, reqpart and part: what is installed where. */

export function ostreecontainer(d: Draft, words: string[], where: string, line: number): void {
  once(d, 'ostreecontainer', where, line);
  const o = parseOptions(words, { '--url': 'value', '--transport': 'value', '--stateroot': 'value', '--no-signature-verification': 'flag' }, where, 'ostreecontainer');
  if (o.positional.length) throw invalid(where, `ostreecontainer takes no arguments besides options (got "${o.positional[0]}")`);
  const url = o.values.get('--url');
  if (!url) throw invalid(where, 'ostreecontainer needs --url', 'e.g. ostreecontainer --url=registry.lan:5000/os/base:1');
  const transport = o.values.get('--transport') ?? 'registry';
  if (!['registry', 'oci', 'oci-archive'].includes(transport)) throw invalid(where, `ostreecontainer --transport ${transport} is not one of registry, oci, oci-archive`);
  const stateroot = o.values.get('--stateroot') ?? 'default';
  if (!/^[A-Za-z0-9_.-]+$/.test(stateroot)) throw invalid(where, `ostreecontainer --stateroot "${stateroot}" is not a plain name`);
  d.ostreecontainer = { url, transport: transport as OstreeTransport, stateroot, verifySignatures: !o.flags.has('--no-signature-verification') };
}

export function clearpart(d: Draft, words: string[], where: string, line: number): void {
  once(d, 'clearpart', where, line);
  const o = parseOptions(words, { '--all': 'flag', '--initlabel': 'flag', '--disklabel': 'value', '--drives': 'value' }, where, 'clearpart');
  if (o.positional.length) throw invalid(where, `clearpart takes no arguments besides options (got "${o.positional[0]}")`);
  const disklabel = o.values.get('--disklabel') ?? 'gpt';
  if (disklabel !== 'gpt' && disklabel !== 'msdos') throw invalid(where, `clearpart --disklabel ${disklabel} is not gpt or msdos`);
  if (disklabel === 'msdos') d.warnings.push({ line, message: 'clearpart --disklabel msdos: basalt always writes GPT (systemd-boot boots from an ESP under UEFI)' });
  const drives = o.values.has('--drives') ? listValue(o.values.get('--drives')) : undefined;
  if (!o.flags.has('--all') && drives === undefined) throw invalid(where, 'clearpart needs --all or --drives (basalt clears whole disks only)');
  d.clearpart = { all: o.flags.has('--all'), initlabel: o.flags.has('--initlabel'), disklabel, ...(drives ? { drives } : {}) };
}

export function ignoredisk(d: Draft, words: string[], where: string, line: number): void {
  once(d, 'ignoredisk', where, line);
  const o = parseOptions(words, { '--only-use': 'value' }, where, 'ignoredisk', { '--onlyuse': '--only-use' });
  if (o.positional.length) throw invalid(where, `ignoredisk takes no arguments besides options (got "${o.positional[0]}")`);
  const only = listValue(o.values.get('--only-use'));
  if (only.length === 0) throw invalid(where, 'ignoredisk needs --only-use=DISK[,DISK]');
  d.onlyUse = only;
}

export function reqpart(d: Draft, words: string[], where: string, line: number): void {
  once(d, 'reqpart', where, line);
  const o = parseOptions(words, { '--add-boot': 'flag' }, where, 'reqpart');
  if (o.positional.length) throw invalid(where, `reqpart takes no arguments besides options (got "${o.positional[0]}")`);
  d.reqpartAddBoot = o.flags.has('--add-boot');
  if (d.reqpartAddBoot) d.warnings.push({ line, message: 'reqpart --add-boot: /boot stays on the root filesystem (ostree keeps its boot files there); only the ESP is a separate partition' });
}

function sizeMiB(value: string | undefined, where: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) <= 0) throw invalid(where, `part --size ${value} is not a positive number of MiB`);
  return Number(value);
}

export function part(d: Draft, words: string[], where: string, line: number): void {
  const o = parseOptions(words, { '--size': 'value', '--grow': 'flag', '--fstype': 'value', '--ondisk': 'value' }, where, 'part', { '--ondrive': '--ondisk' });
  const [mount, ...rest] = o.positional;
  if (mount === undefined) throw invalid(where, 'part needs a mount point (/ or /boot/efi)');
  if (rest.length) throw invalid(where, `part takes one mount point (got also "${rest[0]}")`);
  if (mount !== '/' && mount !== '/boot/efi' && mount !== '/boot')
    throw invalid(where, `part ${mount} is not supported: basalt installs one root filesystem and an ESP`, 'keep part / and part /boot/efi; /var, /home and the rest live on the root filesystem');
  once(d, `part ${mount}`, where, line);
  const size = sizeMiB(o.values.get('--size'), where);
  const fstype = o.values.get('--fstype');
  const grow = o.flags.has('--grow');
  const ondisk = o.values.get('--ondisk');
  let fs: Partition['fstype'];
  if (mount === '/') {
    if (fstype !== undefined && fstype !== 'ext4' && fstype !== 'xfs') throw invalid(where, `part / --fstype ${fstype} is not ext4 or xfs`);
    fs = (fstype ?? 'ext4') as 'ext4' | 'xfs';
    if (size === undefined && !grow) throw invalid(where, 'part / needs --size or --grow');
  } else {
    if (fstype !== undefined && fstype !== 'efi' && fstype !== 'vfat' && mount === '/boot/efi') throw invalid(where, `part /boot/efi --fstype ${fstype} is not efi or vfat`);
    if (grow) throw invalid(where, `part ${mount} --grow: only / can grow`);
    fs = 'efi';
  }
  if (mount === '/boot') {
    d.warnings.push({ line, message: 'part /boot: /boot stays on the root filesystem (ostree keeps its boot files there); no partition is made' });
    return;
  }
  d.parts.push({ mountpoint: mount, ...(size !== undefined ? { sizeMiB: size } : {}), grow, fstype: fs, ...(ondisk ? { ondisk } : {}), line });
}
