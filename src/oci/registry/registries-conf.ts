import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { BasaltError, ioError } from '../errors.js';
import { formatReference, isFullyQualified, parseReference, type ImageReference } from '../reference.js';

/**
 * containers-registries.conf(5), version 2: which registries are insecure, blocked or
 * mirrored, where short names go, and short-name aliases. Version 1 files ([registries.*])
 * are refused with a clear message; nothing current writes them.
 */

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';

export interface MirrorEntry {
  location: string;
  insecure: boolean;
  pullFromMirror: PullFromMirror;
}

export interface RegistryEntry {
  /** What image names it applies to: host[:port][/ns…][/repo], or `*.domain`. */
  prefix: string;
  /** Where those names really live (prefix is replaced by it); empty for a wildcard prefix. */
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrorByDigestOnly: boolean;
  mirrors: MirrorEntry[];
  /** The file that defined it, for messages. */
  source: string;
}

export type ShortNameMode = 'enforcing' | 'permissive' | 'disabled';

export interface RegistriesConfig {
  registries: RegistryEntry[];
  unqualifiedSearchRegistries: string[];
  shortNameMode: ShortNameMode | undefined;
  /** Short name (no tag) → fully-qualified repository. */
  aliases: Map<string, string>;
  /** Files read, in order. */
  files: string[];
}

export interface RegistriesConfLocation {
  /** Explicit main file (--registries-conf / TransportOptions.registriesConf). */
  path?: string;
  /** Explicit drop-in directory. */
  dir?: string;
  env?: NodeJS.ProcessEnv;
}

const SYSTEM_CONF = '/etc/containers/registries.conf';

function userConfigDir(env: NodeJS.ProcessEnv): string | undefined {
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, 'containers');
  return env.HOME ? join(env.HOME, '.config', 'containers') : undefined;
}

/**
 * Which files are read, as containers/image does: the main file (explicit path, else
 * $CONTAINERS_REGISTRIES_CONF, else the user's ~/.config/containers/registries.conf when it
 * exists, else /etc/containers/registries.conf), then `*.conf` from the drop-in directories,
 * each sorted, later files overriding earlier ones. With the default main file the drop-ins
 * are the system's registries.conf.d and then the user's; with an explicit one only
 * `<main file>.d`, so an explicit configuration (tests, a CI job) is not mixed with the host's.
 */
export function registriesConfFiles(loc: RegistriesConfLocation = {}): { main: string; dirs: string[] } {
  const env = loc.env ?? process.env;
  const explicit = loc.path ?? env.CONTAINERS_REGISTRIES_CONF;
  if (explicit !== undefined) return { main: explicit, dirs: [loc.dir ?? `${explicit}.d`] };
  const user = userConfigDir(env);
  const userMain = user === undefined ? undefined : join(user, 'registries.conf');
  const main = userMain !== undefined && existsSync(userMain) ? userMain : SYSTEM_CONF;
  const dirs = loc.dir !== undefined ? [loc.dir] : [`${SYSTEM_CONF}.d`, ...(user === undefined ? [] : [join(user, 'registries.conf.d')])];
  return { main, dirs };
}

function fail(file: string, why: string): never {
  throw new BasaltError('invalid', `registries configuration ${file}: ${why}`, { hint: 'see containers-registries.conf(5) for the version 2 format' });
}

function str(v: unknown, file: string, field: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') fail(file, `${field} must be a string`);
  return v;
}

function bool(v: unknown, file: string, field: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') fail(file, `${field} must be true or false`);
  return v;
}

function pullFromMirror(v: unknown, file: string): PullFromMirror {
  const s = str(v, file, 'pull-from-mirror') ?? 'all';
  if (s !== 'all' && s !== 'digest-only' && s !== 'tag-only') fail(file, `pull-from-mirror "${s}" must be all, digest-only or tag-only`);
  return s;
}

interface ParsedFile {
  registries: RegistryEntry[];
  search?: string[];
  mode?: ShortNameMode;
  aliases: Map<string, string>;
}

/** Parses one registries.conf (or shortnames.conf) text. Exported for tests. */
export function parseRegistriesConf(text: string, file: string): ParsedFile {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    fail(file, `not valid TOML (${(e as Error).message.split('\n')[0]})`);
  }
  if (doc.registries !== undefined) fail(file, 'uses the version 1 format ([registries.search] etc.), which basalt does not read');
  const out: ParsedFile = { registries: [], aliases: new Map() };
  if (doc['unqualified-search-registries'] !== undefined) {
    const v = doc['unqualified-search-registries'];
    if (!Array.isArray(v) || !v.every((x): x is string => typeof x === 'string')) fail(file, 'unqualified-search-registries must be an array of strings');
    out.search = v;
  }
  if (doc['short-name-mode'] !== undefined) {
    const m = str(doc['short-name-mode'], file, 'short-name-mode');
    if (m !== 'enforcing' && m !== 'permissive' && m !== 'disabled') fail(file, `short-name-mode "${m}" must be enforcing, permissive or disabled`);
    out.mode = m;
  }
  if (doc.aliases !== undefined) {
    if (typeof doc.aliases !== 'object' || doc.aliases === null) fail(file, '[aliases] must be a table');
    for (const [name, target] of Object.entries(doc.aliases as Record<string, unknown>)) {
      if (typeof target !== 'string') fail(file, `alias "${name}" must map to a string`);
      if (!isFullyQualified(target)) fail(file, `alias "${name}" = "${target}" is not a fully-qualified name`);
      out.aliases.set(name, target);
    }
  }
  const regs = doc.registry;
  if (regs !== undefined) {
    if (!Array.isArray(regs)) fail(file, '[[registry]] must be an array of tables');
    for (const [i, r] of regs.entries()) {
      if (typeof r !== 'object' || r === null) fail(file, `[[registry]] #${i + 1} is not a table`);
      const o = r as Record<string, unknown>;
      const location = str(o.location, file, 'location') ?? '';
      const prefix = str(o.prefix, file, 'prefix') ?? location;
      if (prefix === '') fail(file, `[[registry]] #${i + 1} has neither prefix nor location`);
      if (prefix.startsWith('*.') && location !== '') fail(file, `[[registry]] with wildcard prefix "${prefix}" cannot set location`);
      const mirrorsRaw = o.mirror ?? [];
      if (!Array.isArray(mirrorsRaw)) fail(file, `[[registry.mirror]] of "${prefix}" must be an array of tables`);
      const mirrors: MirrorEntry[] = mirrorsRaw.map((m: unknown, j: number) => {
        if (typeof m !== 'object' || m === null) fail(file, `mirror #${j + 1} of "${prefix}" is not a table`);
        const mo = m as Record<string, unknown>;
        const ml = str(mo.location, file, 'mirror location');
        if (!ml) fail(file, `mirror #${j + 1} of "${prefix}" has no location`);
        return { location: ml, insecure: bool(mo.insecure, file, 'mirror insecure') ?? false, pullFromMirror: pullFromMirror(mo['pull-from-mirror'], file) };
      });
      out.registries.push({
        prefix,
        location,
        insecure: bool(o.insecure, file, 'insecure') ?? false,
        blocked: bool(o.blocked, file, 'blocked') ?? false,
        mirrorByDigestOnly: bool(o['mirror-by-digest-only'], file, 'mirror-by-digest-only') ?? false,
        mirrors,
        source: file,
      });
    }
  }
  return out;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw ioError(`reading registries configuration ${path}`, e);
  }
}

/** Loads and merges the main file and its drop-ins. A missing main file means defaults. */
export async function loadRegistriesConf(loc: RegistriesConfLocation = {}): Promise<RegistriesConfig> {
  const { main, dirs } = registriesConfFiles(loc);
  const config: RegistriesConfig = { registries: [], unqualifiedSearchRegistries: [], shortNameMode: undefined, aliases: new Map(), files: [] };
  const files: string[] = [main];
  for (const dir of dirs) {
    try {
      files.push(...(await readdir(dir)).filter((n) => n.endsWith('.conf')).sort().map((n) => join(dir, n)));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw ioError(`reading ${dir}`, e);
    }
  }
  for (const file of files) {
    const text = await readOptional(file);
    if (text === undefined) {
      if (file === main && (loc.path !== undefined || (loc.env ?? process.env).CONTAINERS_REGISTRIES_CONF !== undefined) && file !== SYSTEM_CONF)
        throw new BasaltError('not-found', `registries configuration ${file} does not exist`, { hint: 'check --registries-conf or CONTAINERS_REGISTRIES_CONF' });
      continue;
    }
    const parsed = parseRegistriesConf(text, file);
    config.files.push(file);
    // A later file's [[registry]] with the same prefix replaces the earlier one, as in containers/image.
    for (const r of parsed.registries) {
      const at = config.registries.findIndex((x) => x.prefix === r.prefix);
      if (at >= 0) config.registries[at] = r;
      else config.registries.push(r);
    }
    if (parsed.search !== undefined) config.unqualifiedSearchRegistries = parsed.search;
    if (parsed.mode !== undefined) config.shortNameMode = parsed.mode;
    for (const [k, v] of parsed.aliases) config.aliases.set(k, v);
  }
  return config;
}

/** `host/repo[:tag][@digest]` as written for prefix matching. */
function matchableName(ref: ImageReference): string {
  return formatReference(ref);
}

function prefixMatches(name: string, host: string, prefix: string): boolean {
  if (prefix.startsWith('*.')) return host.endsWith(prefix.slice(1)) && host.length > prefix.length - 1;
  if (!name.startsWith(prefix)) return false;
  if (name.length === prefix.length) return true;
  const next = name[prefix.length];
  return next === '/' || next === ':' || next === '@';
}

/** The [[registry]] table for a reference: the longest matching prefix. */
export function findRegistry(config: RegistriesConfig, ref: ImageReference): RegistryEntry | undefined {
  const name = matchableName(ref);
  let best: RegistryEntry | undefined;
  let bestLength = -1;
  for (const r of config.registries) {
    if (!prefixMatches(name, ref.registry, r.prefix)) continue;
    // A wildcard matches a host only, so any exact prefix for that host is more specific.
    const length = r.prefix.startsWith('*.') ? 0 : r.prefix.length;
    if (length > bestLength) {
      best = r;
      bestLength = length;
    }
  }
  return best;
}

/** One place to try when pulling. */
export interface PullSource {
  reference: ImageReference;
  insecure: boolean;
  /** Whether it is a mirror (errors there fall through to the next source). */
  mirror: boolean;
}

function rewrite(ref: ImageReference, prefix: string, location: string): ImageReference {
  const name = matchableName(ref);
  const rewritten = location + name.slice(prefix.length);
  return parseReference(rewritten);
}

function blockedError(entry: RegistryEntry, ref: ImageReference): BasaltError {
  return new BasaltError('denied', `registry ${ref.registry} is blocked by ${entry.source} ([[registry]] prefix "${entry.prefix}", blocked = true); refusing ${formatReference(ref)}`, {
    hint: `edit ${entry.source} to unblock it, or use another registry`,
  });
}

/**
 * Where to pull a reference from, in order: its mirrors (those allowed for a digest or tag
 * reference), then the primary location. A blocked registry is refused here.
 */
export function pullSources(config: RegistriesConfig, ref: ImageReference): PullSource[] {
  const entry = findRegistry(config, ref);
  if (entry === undefined) return [{ reference: ref, insecure: false, mirror: false }];
  if (entry.blocked) throw blockedError(entry, ref);
  const wildcard = entry.prefix.startsWith('*.');
  const primary = wildcard || entry.location === '' ? ref : rewrite(ref, entry.prefix, entry.location);
  const byDigest = ref.digest !== undefined;
  const sources: PullSource[] = [];
  if (!wildcard) {
    for (const m of entry.mirrors) {
      if (entry.mirrorByDigestOnly && !byDigest) continue;
      if (m.pullFromMirror === 'digest-only' && !byDigest) continue;
      if (m.pullFromMirror === 'tag-only' && byDigest) continue;
      try {
        sources.push({ reference: rewrite(ref, entry.prefix, m.location), insecure: m.insecure, mirror: true });
      } catch {
        // A mirror location that does not make a valid name for this image is skipped, like an unreachable mirror.
      }
    }
  }
  sources.push({ reference: primary, insecure: entry.insecure, mirror: false });
  return sources;
}

/** Settings for pushing to (or deleting from) a reference: no mirrors, no rewriting. */
export function pushSettings(config: RegistriesConfig, ref: ImageReference): { insecure: boolean } {
  const entry = findRegistry(config, ref);
  if (entry?.blocked) throw blockedError(entry, ref);
  return { insecure: entry?.insecure ?? false };
}

/**
 * Resolves a name to a fully-qualified reference: a fully-qualified name is parsed as is;
 * a short name goes through [aliases] first, then a single unqualified-search-registry.
 * With several search registries basalt cannot prompt the way podman does, so it asks for a
 * fully-qualified name instead of guessing (guessing is how short-name spoofing happens).
 */
export function resolveName(name: string, config: RegistriesConfig): ImageReference {
  if (isFullyQualified(name)) return parseReference(name);
  // Split tag/digest off the short name to look it up as an alias.
  const at = name.indexOf('@');
  const beforeDigest = at >= 0 ? name.slice(0, at) : name;
  const digestPart = at >= 0 ? name.slice(at) : '';
  const colon = beforeDigest.lastIndexOf(':');
  const repo = colon > beforeDigest.lastIndexOf('/') ? beforeDigest.slice(0, colon) : beforeDigest;
  const tagPart = colon > beforeDigest.lastIndexOf('/') ? beforeDigest.slice(colon) : '';
  const alias = config.aliases.get(repo);
  if (alias !== undefined) return parseReference(`${alias}${tagPart}${digestPart}`);
  const search = config.unqualifiedSearchRegistries;
  if (search.length === 1 && search[0] !== undefined) return parseReference(`${repo}${tagPart}${digestPart}`, search[0]);
  const where = config.files.length > 0 ? config.files.join(', ') : 'registries.conf';
  throw new BasaltError('usage', `"${name}" is a short name and ${search.length === 0 ? 'no unqualified-search-registries are configured' : `several registries could serve it (${search.join(', ')})`} in ${where}`, {
    hint: `use a fully-qualified name such as ${search[0] ?? 'registry.example.com'}/${repo}${tagPart}, or add an alias under [aliases]`,
  });
}
