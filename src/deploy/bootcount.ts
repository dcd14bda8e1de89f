import { readFile } from 'node:fs/promises';
import { BasaltError, ioError } from '../oci/errors.js';
import type { EspTarget } from './esp-target.js';

/**
 * systemd-boot's boot counting, as it shows in entry file names: `NAME+LEFT[-DONE].conf`.
 * systemd-boot renames `+LEFT-DONE` to `+(LEFT-1)-(DONE+1)` before it boots an entry;
 * systemd-bless-boot renames it to `NAME.conf` (counting over, the entry is good) once
 * boot-complete.target is reached. An entry at `+0-…` has run out of tries: systemd-boot sorts
 * it after every other entry and boots it only when nothing else is left.
 */
export interface BootCounter {
  triesLeft: number;
  triesDone: number;
}

/** good: no counter (blessed, or counting off); trying: tries left; bad: out of tries. */
export type BootEntryState = 'good' | 'trying' | 'bad';

export interface EntryFileName {
  /** The name without the counter and `.conf`. */
  stem: string;
  counter?: BootCounter;
}

export function parseEntryFileName(name: string): EntryFileName | undefined {
  const m = /^(.+?)(?:\+(\d+)(?:-(\d+))?)?\.conf$/.exec(name);
  if (!m) return undefined;
  const stem = m[1] as string;
  if (m[2] === undefined) return { stem };
  return { stem, counter: { triesLeft: Number(m[2]), triesDone: m[3] === undefined ? 0 : Number(m[3]) } };
}

/** The name of a new entry: `STEM+TRIES.conf`, or `STEM.conf` when counting is off (0 or undefined). */
export function entryFileName(stem: string, tries: number | undefined): string {
  return `${stem}${countingSuffix(tries)}.conf`;
}

export function countingSuffix(tries: number | undefined): string {
  if (tries === undefined || tries === 0) return '';
  if (!Number.isInteger(tries) || tries < 0 || tries > 1000)
    throw new BasaltError('usage', `boot counting tries must be a whole number from 0 (off) to 1000, not ${String(tries)}`);
  return `+${tries}`;
}

export function entryState(counter: BootCounter | undefined): BootEntryState {
  if (!counter) return 'good';
  return counter.triesLeft > 0 ? 'trying' : 'bad';
}

export interface EspEntryStatus {
  /** The file name as it is on the ESP now. */
  file: string;
  state: BootEntryState;
  counter?: BootCounter;
}

/** The entries under `dir` on the ESP whose names start with `prefix`, by stem. */
export async function espEntryStates(target: EspTarget, dir: string, prefix: string): Promise<Map<string, EspEntryStatus>> {
  const out = new Map<string, EspEntryStatus>();
  for (const path of await target.list(dir)) {
    const file = path.slice(path.lastIndexOf('/') + 1);
    if (!file.startsWith(prefix)) continue;
    const parsed = parseEntryFileName(file);
    if (!parsed) continue;
    out.set(parsed.stem, { file, state: entryState(parsed.counter), ...(parsed.counter ? { counter: parsed.counter } : {}) });
  }
  return out;
}

/** systemd-boot's vendor GUID for its EFI variables (LoaderEntrySelected, LoaderBootCountPath…). */
export const LOADER_GUID = '4a67b082-0a4c-41cf-b6c7-440b29bb8c4f';
export const BOOT_COUNT_PATH_VARIABLE = `/sys/firmware/efi/efivars/LoaderBootCountPath-${LOADER_GUID}`;

/** An EFI variable's value as text: 4 attribute bytes, then UTF-16LE, NUL-terminated. */
export function decodeEfiString(raw: Buffer): string {
  return raw.subarray(4).toString('utf16le').replace(/\0+$/, '');
}

/**
 * The ESP path of the entry this boot was counted under (`\loader\entries\NAME+L-D.conf`),
 * which systemd-boot sets only when it booted an entry with a counter; undefined otherwise.
 */
export async function bootCountPath(variableFile = BOOT_COUNT_PATH_VARIABLE): Promise<string | undefined> {
  let raw: Buffer;
  try {
    raw = await readFile(variableFile);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(`reading the EFI variable ${variableFile}`, e);
  }
  return raw.length > 4 ? decodeEfiString(raw) : undefined;
}

/** The counter of the running boot (after systemd-boot's decrement), if this boot is counted. */
export async function currentBootCounter(variableFile = BOOT_COUNT_PATH_VARIABLE): Promise<BootCounter | undefined> {
  const path = await bootCountPath(variableFile);
  if (path === undefined) return undefined;
  return parseEntryFileName(path.slice(Math.max(path.lastIndexOf('\\'), path.lastIndexOf('/')) + 1))?.counter;
}
