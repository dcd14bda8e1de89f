import { stat } from 'node:fs/promises';
import { ioError } from '../oci/errors.js';
import { join } from 'node:path';
import { formatBls } from './bls.js';
import { entryFileName, parseEntryFileName } from './bootcount.js';
import type { EspTarget } from './esp-target.js';
import { listDeployments, type Deployment } from './sysroot.js';
import { crashPoint } from './crash-points.js';

/**
 * Mirrors ostree's deployments onto the ESP for systemd-boot, which reads only the FAT ESP.
 *
 * - Entry names are stable per deployment: `loader/entries/basalt-STATEROOT-CSUM12.SERIAL.conf`
 *   from the deployment's commit and deploy serial, never ostree's rotating `ostree-N-…` names,
 *   so boot counting (`+LEFT[-DONE]` in the name, renamed by systemd-boot and
 *   systemd-bless-boot) keeps its state across rewrites.
 * - Kernels and initramfs are stored once per ostree boot checksum (a content hash of kernel
 *   + initramfs) under `basalt/STATEROOT-BOOTCSUM16/`: deployments sharing a kernel share the
 *   files, and a file, once written, never changes.
 * - Order: every entry has `sort-key basalt` and `version` = ostree's own version number
 *   (the default deployment has the highest), and systemd-boot sorts equal sort keys by version,
 *   newest first. loader.conf names no default, so an entry that runs out of tries sorts last.
 * - Steps: new kernels, then new entries, then rewritten entries (order), then loader.conf,
 *   and only then stale entries and kernels are removed. Cut anywhere, the ESP still holds a
 *   complete entry for every deployment that existed before or after.
 */
export const ENTRY_PREFIX = 'basalt-';
export const KERNEL_DIR = 'basalt';
export const ENTRIES_DIR = 'loader/entries';
const SORT_KEY = 'basalt';

export interface MirrorOptions {
  /**
   * Boot counting: new entries get `+N` (tries left) in their names. Default off. Existing
   * entries keep the name they have (`+L-D`, or none once blessed): the counter is the
   * bootloader's state, never reset by a mirror.
   */
  bootCountingTries?: number;
  /** loader.conf timeout in seconds (default 3). */
  timeout?: number;
}

export interface PlannedEntry {
  id: string;
  deployment: Deployment;
  /** The entry file's text. */
  content: string;
  kernelDir: string;
  /** ESP path → source file in the sysroot. */
  files: Map<string, string>;
}

export interface EspFile {
  /** Relative to the ESP root. */
  path: string;
  /** Copy from this file… */
  source?: string;
  /** …or write this text. */
  content?: string;
}

export interface MirrorResult {
  entries: string[];
  written: string[];
  removed: string[];
}

/** The stable id of a deployment. */
export function entryId(d: { stateroot: string; checksum: string; deploySerial: number }): string {
  return `${d.stateroot}-${d.checksum.slice(0, 12)}.${d.deploySerial}`;
}

/** Parses `basalt-ID[+LEFT[-DONE]].conf` → id. */
export function entryIdOfFile(name: string): string | undefined {
  const stem = parseEntryFileName(name)?.stem;
  return stem?.startsWith(ENTRY_PREFIX) ? stem.slice(ENTRY_PREFIX.length) : undefined;
}

/** The file of a new entry: `basalt-ID+TRIES.conf` with boot counting, `basalt-ID.conf` without. */
export function newEntryPath(id: string, tries: number | undefined): string {
  return `${ENTRIES_DIR}/${entryFileName(`${ENTRY_PREFIX}${id}`, tries)}`;
}

function fileName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** What the ESP should hold for the sysroot's current deployments. */
export async function planBootEntries(sysroot: string): Promise<PlannedEntry[]> {
  const deployments = await listDeployments(sysroot);
  return deployments.map((d) => {
    const id = entryId(d);
    const kernelDir = `${KERNEL_DIR}/${d.stateroot}-${d.bootChecksum.slice(0, 16)}`;
    const files = new Map<string, string>();
    const linux = `${kernelDir}/${fileName(d.linux)}`;
    files.set(linux, join(sysroot, 'boot', d.linux));
    const initrds = d.initrd.map((i) => {
      const p = `${kernelDir}/${fileName(i)}`;
      files.set(p, join(sysroot, 'boot', i));
      return p;
    });
    const title = `${d.title.replace(/\s*\(ostree:\d+\)\s*$/, '')} (${id})`;
    const fields: Array<[string, string]> = [
      ['title', title],
      ['version', d.blsVersion],
      ['sort-key', SORT_KEY],
      ['linux', `/${linux}`],
      ...initrds.map((i): [string, string] => ['initrd', `/${i}`]),
      ['options', d.options],
    ];
    return { id, deployment: d, content: formatBls(fields), kernelDir, files };
  });
}

export function loaderConf(options: MirrorOptions = {}): string {
  return `timeout ${options.timeout ?? 3}\n`;
}

/** Every file the ESP should hold (for writing a fresh ESP image in one go). */
export async function espFiles(sysroot: string, options: MirrorOptions = {}): Promise<EspFile[]> {
  const files: EspFile[] = [];
  for (const e of await planBootEntries(sysroot)) {
    for (const [path, source] of e.files) if (!files.some((f) => f.path === path)) files.push({ path, source });
    files.push({ path: newEntryPath(e.id, options.bootCountingTries), content: e.content });
  }
  files.push({ path: 'loader/loader.conf', content: loaderConf(options) });
  return files;
}

/** Brings `target` in line with the sysroot's deployments (see the order above). */
export async function mirrorBootEntries(sysroot: string, target: EspTarget, options: MirrorOptions = {}): Promise<MirrorResult> {
  const plan = await planBootEntries(sysroot);
  const result: MirrorResult = { entries: [], written: [], removed: [] };
  const wanted = new Set<string>();
  // 1. kernels and initramfs (content-addressed: present with the right size means done).
  for (const e of plan) {
    for (const [path, source] of e.files) {
      wanted.add(path);
      const { size } = await stat(source).catch((err: unknown) => {
        throw ioError(`kernel file ${source} of deployment ${e.id}`, err);
      });
      if ((await target.size(path)) === size) continue;
      await target.copyFrom(path, source);
      result.written.push(path);
    }
  }
  await crashPoint('esp-kernel-copied');
  // 2. entries: new ones first, then rewrites of existing ones (their order may have changed).
  const existing = new Map<string, string>();
  const duplicates: string[] = [];
  for (const path of await target.list(ENTRIES_DIR)) {
    const id = entryIdOfFile(fileName(path));
    if (id === undefined) continue;
    const other = existing.get(id);
    if (other === undefined) existing.set(id, path);
    else {
      // Two names for one entry (an older mirror raced systemd-bless-boot's rename): keep the
      // one further along (blessed, else fewer tries left); the other goes with the stale ones.
      const [keep, drop] = furtherAlong(fileName(path), fileName(other)) ? [path, other] : [other, path];
      existing.set(id, keep);
      duplicates.push(drop);
    }
  }
  const rewrites: Array<[string, string]> = [];
  for (const e of plan) {
    const current = existing.get(e.id);
    if (current === undefined) {
      const path = newEntryPath(e.id, options.bootCountingTries);
      await target.write(path, e.content);
      result.written.push(path);
      result.entries.push(path);
    } else {
      result.entries.push(current);
      rewrites.push([current, e.content]);
    }
  }
  await crashPoint('esp-entry-written');
  for (const [path, content] of rewrites) {
    const now = await target.read(path);
    // Gone since the listing: systemd-boot or systemd-bless-boot renamed it (its counter moved).
    // Writing the old name would make a second entry; the next mirror updates the renamed one.
    if (now === undefined || now.toString('utf8') === content) continue;
    await target.write(path, content);
    result.written.push(path);
  }
  const conf = loaderConf(options);
  if ((await target.read('loader/loader.conf'))?.toString('utf8') !== conf) {
    await target.write('loader/loader.conf', conf);
    result.written.push('loader/loader.conf');
  }
  await crashPoint('esp-old-entries');
  // 3. stale entries, then the kernels no entry uses.
  const planned = new Set(plan.map((e) => e.id));
  for (const [id, path] of existing) {
    if (planned.has(id)) continue;
    await target.remove(path);
    result.removed.push(path);
  }
  for (const path of duplicates) {
    await target.remove(path);
    result.removed.push(path);
  }
  for (const path of await target.list(KERNEL_DIR)) {
    if (wanted.has(path)) continue;
    await target.remove(path);
    result.removed.push(path);
  }
  return result;
}

/** Whether entry file `a` is further along than `b` in boot counting: blessed, else fewer tries left. */
function furtherAlong(a: string, b: string): boolean {
  const ca = parseEntryFileName(a)?.counter;
  const cb = parseEntryFileName(b)?.counter;
  if (!ca || !cb) return !ca && !!cb;
  return ca.triesLeft < cb.triesLeft || (ca.triesLeft === cb.triesLeft && ca.triesDone > cb.triesDone);
}
