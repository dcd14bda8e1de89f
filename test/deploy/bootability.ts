import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { blsValue, kargValue, parseBls } from '../../src/deploy/bls.js';
import { parseEntryFileName } from '../../src/deploy/bootcount.js';
import { DEPLOYMENT_KARG, deployDir, listDeployments } from '../../src/deploy/sysroot.js';

/**
 * What systemd-boot would see on a directory-level ESP, judged against the sysroot: every
 * entry's kernel and initramfs exist on the ESP, and its ostree= boot link resolves to a
 * complete deployment, either directly or (when ostree has deleted that link since) through
 * `basalt.deployment=`, as the initramfs hook does. The default is the first entry in
 * systemd-boot's order. Problems are returned as sentences, so a failing test says which.
 */
export interface EspEntry {
  file: string;
  sortKey: string;
  version: string;
  /** The deployment directory the entry boots, when it resolves. */
  deployment?: string;
  /** `direct` through the ostree= link, `hook` through basalt.deployment=. */
  via?: 'direct' | 'hook';
  problems: string[];
}

export interface Bootability {
  entries: EspEntry[];
  default?: EspEntry;
  problems: string[];
}

const exists = (p: string): Promise<boolean> => lstat(p).then(() => true, () => false);

/** systemd-boot's order for entries with sort keys: exhausted tries last, sort-key, version newest first, id. */
function compareEntries(a: EspEntry, b: EspEntry): number {
  const exhausted = (e: EspEntry): number => (parseEntryFileName(e.file)?.counter?.triesLeft === 0 ? 1 : 0);
  const collator = (x: string, y: string): number => x.localeCompare(y, 'en', { numeric: true });
  return exhausted(a) - exhausted(b) || collator(a.sortKey, b.sortKey) || -collator(a.version, b.version) || -collator(a.file, b.file);
}

/** A deployment directory ostree lists (has a boot entry in the sysroot) with its origin and an /etc. */
async function completeDeployment(sysroot: string, dir: string, listed: Set<string>): Promise<string | undefined> {
  if (!listed.has(basename(dir))) return `${dir} is not one of ostree's deployments`;
  if (!(await exists(`${dir}.origin`))) return `${dir} has no origin file`;
  if (!(await exists(join(dir, 'usr/lib/modules')))) return `${dir} has no /usr/lib/modules`;
  if (!(await exists(join(dir, 'etc')))) return `${dir} has no /etc`;
  if (!dir.startsWith(sysroot)) return `${dir} is outside ${sysroot}`;
  return undefined;
}

export async function checkBootable(sysroot: string, esp: string): Promise<Bootability> {
  const problems: string[] = [];
  const listed = new Set((await listDeployments(sysroot)).map((d) => `${d.checksum}.${d.deploySerial}`));
  const names = await readdir(join(esp, 'loader/entries')).catch(() => [] as string[]);
  const entries: EspEntry[] = [];
  for (const name of names) {
    if (!name.endsWith('.conf') || name.startsWith('.')) {
      problems.push(`loader/entries/${name} is not an entry (a temporary file left behind?)`);
      continue;
    }
    const bls = parseBls(await readFile(join(esp, 'loader/entries', name), 'utf8'));
    const e: EspEntry = { file: name, sortKey: blsValue(bls, 'sort-key') ?? '', version: blsValue(bls, 'version') ?? '', problems: [] };
    entries.push(e);
    for (const f of [blsValue(bls, 'linux'), ...(bls.get('initrd') ?? [])]) {
      if (f === undefined) e.problems.push('no linux line');
      else if (!((await stat(join(esp, f)).catch(() => undefined))?.size ?? 0)) e.problems.push(`${f} is missing or empty on the ESP`);
    }
    const options = blsValue(bls, 'options') ?? '';
    const link = kargValue(options, 'ostree');
    const named = kargValue(options, DEPLOYMENT_KARG);
    const direct = link === undefined ? undefined : await realpath(join(sysroot, link)).catch(() => undefined);
    if (direct !== undefined) {
      e.deployment = direct;
      e.via = 'direct';
    } else if (named !== undefined) {
      const [stateroot, id] = named.split('/') as [string, string];
      const m = /^([0-9a-f]{64})\.(\d+)$/.exec(id ?? '');
      if (m) {
        e.deployment = deployDir(sysroot, stateroot, m[1] as string, Number(m[2]));
        e.via = 'hook';
      }
    }
    if (e.deployment === undefined) e.problems.push(`neither ostree=${link} nor ${DEPLOYMENT_KARG}=${named} resolves`);
    else {
      const why = await completeDeployment(sysroot, e.deployment, listed);
      if (why) e.problems.push(why);
    }
    if (e.problems.length) problems.push(`${name}: ${e.problems.join('; ')}`);
  }
  entries.sort(compareEntries);
  const first = entries[0];
  if (!first) problems.push('the ESP has no boot entry');
  else if (first.problems.length) problems.push(`the default entry ${first.file} does not boot`);
  for (const dir of ['basalt', 'loader'])
    for (const f of await walk(join(esp, dir))) if (/\.tmp-\d+-[0-9a-f]+$/.test(f)) problems.push(`temporary file ${f} left on the ESP`);
  return { entries, ...(first ? { default: first } : {}), problems };
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}
