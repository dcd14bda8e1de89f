import { InvalidArgumentError, Option, type Command } from 'commander';
import { BasaltError } from '../oci/errors.js';
import { parsePlatform } from '../oci/platform.js';
import type { Platform } from '../oci/manifest.js';
import type { TransportOptions } from '../oci/transport.js';

/** `--flag`, `--flag=true`, `--flag=false` (skopeo's boolean syntax). */
export function parseBool(value: string | undefined): boolean {
  if (value === undefined || value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new InvalidArgumentError(`expected true or false, got "${value}"`);
}

export function boolOption(flags: string, description: string): Option {
  return new Option(flags, description).argParser(parseBool);
}

/** Collects repeated options into a list. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Registry options for one side (`src-`, `dest-` or none), as skopeo names them. */
export function addRegistryOptions(cmd: Command, side: '' | 'src-' | 'dest-'): Command {
  const who = side === 'src-' ? 'the source ' : side === 'dest-' ? 'the destination ' : '';
  return cmd
    .addOption(boolOption(`--${side}tls-verify [bool]`, `require HTTPS and verify certificates when talking to ${who}registry`))
    .option(`--${side}cert-dir <dir>`, `use certificates (*.crt, *.cert, *.key) in <dir> for ${who}registry`)
    .option(`--${side}creds <user:password>`, `credentials for ${who}registry`)
    .option(`--${side}authfile <file>`, `auth file for ${who}registry (default: containers' auth.json)`);
}

type Opts = Record<string, unknown>;

function str(o: Opts, key: string): string | undefined {
  const v = o[key];
  return typeof v === 'string' ? v : undefined;
}

/** Transport options for one side from parsed flags; side-specific flags win over plain ones. */
export function transportOptions(o: Opts, side: '' | 'src' | 'dest', log?: (m: string) => void): TransportOptions {
  const pick = (name: string): unknown => {
    const sideKey = side ? `${side}${name[0]?.toUpperCase()}${name.slice(1)}` : name;
    return o[sideKey] ?? o[name];
  };
  const out: TransportOptions = {};
  const tls = pick('tlsVerify');
  if (typeof tls === 'boolean') out.tlsVerify = tls;
  const certDir = pick('certDir');
  if (typeof certDir === 'string') out.certDir = certDir;
  const creds = pick('creds');
  if (typeof creds === 'string') out.creds = creds;
  const authFile = pick('authfile');
  if (typeof authFile === 'string') out.authFile = authFile;
  const chunk = pick('chunkSize');
  if (typeof chunk === 'string') out.chunkSize = parseSize(chunk);
  const conf = str(o, 'registriesConf');
  if (conf) out.registriesConf = conf;
  if (log) out.log = log;
  return out;
}

/** `--platform`, or skopeo's --override-os/--override-arch/--override-variant. */
export function platformOption(o: Opts): Platform | undefined {
  const p = str(o, 'platform');
  if (p) return parsePlatform(p);
  const os = str(o, 'overrideOs');
  const arch = str(o, 'overrideArch');
  if (!os && !arch) return undefined;
  const platform: Platform = { os: os ?? 'linux', architecture: arch ?? (process.arch === 'x64' ? 'amd64' : process.arch) };
  const variant = str(o, 'overrideVariant');
  if (variant) platform.variant = variant;
  return platform;
}

export function addPlatformOptions(cmd: Command): Command {
  return cmd
    .option('--platform <os/arch[/variant]>', 'which image of a multi-platform index to use (default: this machine\'s)')
    .option('--override-os <os>', 'as --platform, skopeo style')
    .option('--override-arch <arch>', 'as --platform, skopeo style')
    .option('--override-variant <variant>', 'as --platform, skopeo style');
}

/** `KEY=VALUE` into [KEY, VALUE]; `KEY-` (removal) into [KEY, null]. */
export function keyValue(s: string, what: string): [string, string | null] {
  const eq = s.indexOf('=');
  if (eq > 0) return [s.slice(0, eq), s.slice(eq + 1)];
  if (s.endsWith('-') && s.length > 1) return [s.slice(0, -1), null];
  throw new BasaltError('usage', `${what} "${s}" is not KEY=VALUE (or KEY- to remove)`);
}

/** An entrypoint/cmd given as a JSON array or a plain command line (split on spaces). */
export function commandLine(s: string): string[] | null {
  if (s === '') return null;
  if (s.trim().startsWith('[')) {
    try {
      const v = JSON.parse(s) as unknown;
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    } catch {
      // fall through
    }
    throw new BasaltError('usage', `"${s}" is not a JSON array of strings`);
  }
  return s.split(/\s+/).filter(Boolean);
}

export function sourceDateEpoch(): number | undefined {
  const v = process.env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new BasaltError('usage', `SOURCE_DATE_EPOCH="${v}" is not a whole number of seconds`);
  return Number(v);
}

/** `16777216`, `16M`, `16MiB`, `512k` into bytes. */
export function parseSize(s: string): number {
  const m = /^(\d+)\s*([kmg]?)(i?b)?$/i.exec(s.trim());
  if (!m) throw new BasaltError('usage', `"${s}" is not a size`, { hint: 'write bytes or a number with k, M or G' });
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g'];
  const n = Number(m[1]) * unit;
  if (n < 1024) throw new BasaltError('usage', `chunk size ${s} is too small (at least 1k)`);
  return n;
}
