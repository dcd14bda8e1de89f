/**
 * The small value types of the App Container spec v0.8.11: AC Identifier, AC Name, SemVer,
 * os/arch pairs, resource quantities. Two modes: 'strict' follows the spec's text (its
 * grammars), 'actool' reproduces what actool 0.8.11 accepts (it checks only the character
 * set and the edges of identifiers, so "a..b" passes there and fails here in strict mode).
 */
export type ValidationMode = 'strict' | 'actool';

/** Thrown by validators; the caller adds which file it is about. */
export class RuleError extends Error {
  constructor(readonly rule: string) {
    super(rule);
  }
}

const AC_IDENTIFIER = /^[a-z0-9]+([-._~/][a-z0-9]+)*$/;
const AC_IDENTIFIER_CHARS = /[^a-z0-9\-._~/]/;
const AC_IDENTIFIER_EDGES = /(^[-._~/]+)|([-._~/]+$)/;
const AC_NAME = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const AC_NAME_CHARS = /[^a-z0-9-]/;
const AC_NAME_EDGES = /(^-+)|(-+$)/;

export function checkAcIdentifier(value: string, field: string, mode: ValidationMode): void {
  if (value === '') throw new RuleError(`${field}: an AC Identifier cannot be empty`);
  if (AC_IDENTIFIER_CHARS.test(value)) throw new RuleError(`${field} "${value}": an AC Identifier contains only lower case alphanumerics and "-._~/"`);
  if (AC_IDENTIFIER_EDGES.test(value)) throw new RuleError(`${field} "${value}": an AC Identifier starts and ends with a lower case alphanumeric`);
  if (mode === 'strict' && !AC_IDENTIFIER.test(value))
    throw new RuleError(`${field} "${value}": an AC Identifier separates alphanumeric runs by single "-._~/" characters (spec grammar)`);
}

export function checkAcName(value: string, field: string, mode: ValidationMode): void {
  if (value === '') throw new RuleError(`${field}: an AC Name cannot be empty`);
  if (AC_NAME_CHARS.test(value)) throw new RuleError(`${field} "${value}": an AC Name contains only lower case alphanumerics and "-"`);
  if (AC_NAME_EDGES.test(value)) throw new RuleError(`${field} "${value}": an AC Name starts and ends with a lower case alphanumeric`);
  if (mode === 'strict' && !AC_NAME.test(value)) throw new RuleError(`${field} "${value}": an AC Name separates alphanumeric runs by single "-" (spec grammar)`);
}

/** actool's sanitiser for names made from foreign strings (docker2aci): lower case, bad runs to "_". */
export function sanitizeAcIdentifier(s: string): string {
  const out = s.toLowerCase().replace(/[^a-z0-9\-._~/]/g, '_').replace(/(^[-._~/]+)|([-._~/]+$)/g, '');
  if (out === '') throw new RuleError(`"${s}" has no character usable in an AC Identifier`);
  return out;
}

export function sanitizeAcName(s: string): string {
  const out = s.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/(^-+)|(-+$)/g, '');
  if (out === '') throw new RuleError(`"${s}" has no character usable in an AC Name`);
  return out;
}

const SEMVER_STRICT = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;
const SEMVER_LOOSE = /^(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;

export function checkSemVer(value: string, field: string, mode: ValidationMode): void {
  const m = (mode === 'strict' ? SEMVER_STRICT : SEMVER_LOOSE).exec(value);
  if (!m) throw new RuleError(`${field} "${value}" is not a semantic version (MAJOR.MINOR.PATCH)`);
  if (value.split(/[-+]/)[0]?.split('.').every((n) => Number(n) === 0) && m[4] === undefined && m[6] === undefined)
    throw new RuleError(`${field} "${value}": the version cannot be zero`);
}

/** The spec's table of valid os/arch label pairs. */
export const VALID_OS_ARCH: Readonly<Record<string, readonly string[]>> = {
  linux: ['amd64', 'i386', 'aarch64', 'aarch64_be', 'armv6l', 'armv7l', 'armv7b', 'ppc64', 'ppc64le', 's390x'],
  freebsd: ['amd64', 'i386', 'arm'],
  darwin: ['x86_64', 'i386'],
};

export function checkOsArch(labels: ReadonlyMap<string, string>, field: string): void {
  const os = labels.get('os');
  if (os === undefined) return;
  const arches = VALID_OS_ARCH[os];
  if (!arches) throw new RuleError(`${field}: bad os "${os}" (must be one of: ${Object.keys(VALID_OS_ARCH).sort().join(', ')})`);
  const arch = labels.get('arch');
  if (arch !== undefined && !arches.includes(arch)) throw new RuleError(`${field}: bad arch "${arch}" for ${os} (must be one of: ${arches.join(', ')})`);
}

/** appc's os/arch for an OCI/Go platform (docker2aci, discovery defaults). */
export function appcOsArch(os: string, arch: string, variant?: string): { os: string; arch: string } | undefined {
  const table: Record<string, [string, string]> = {
    'linux/amd64': ['linux', 'amd64'], 'linux/386': ['linux', 'i386'], 'linux/arm64': ['linux', 'aarch64'],
    'linux/arm': ['linux', variant === 'v7' || variant === '7' ? 'armv7l' : 'armv6l'], 'linux/ppc64': ['linux', 'ppc64'],
    'linux/ppc64le': ['linux', 'ppc64le'], 'linux/s390x': ['linux', 's390x'], 'freebsd/amd64': ['freebsd', 'amd64'],
    'freebsd/386': ['freebsd', 'i386'], 'freebsd/arm': ['freebsd', 'arm'], 'darwin/amd64': ['darwin', 'x86_64'], 'darwin/386': ['darwin', 'i386'],
  };
  const hit = table[`${os}/${arch}`];
  return hit ? { os: hit[0], arch: hit[1] } : undefined;
}

/** The OCI platform of appc os/arch labels (export to OCI). */
export function ociPlatform(os: string, arch: string): { os: string; architecture: string; variant?: string } | undefined {
  const table: Record<string, { os: string; architecture: string; variant?: string }> = {
    'linux/amd64': { os: 'linux', architecture: 'amd64' }, 'linux/i386': { os: 'linux', architecture: '386' },
    'linux/aarch64': { os: 'linux', architecture: 'arm64' }, 'linux/armv6l': { os: 'linux', architecture: 'arm', variant: 'v6' },
    'linux/armv7l': { os: 'linux', architecture: 'arm', variant: 'v7' }, 'linux/ppc64': { os: 'linux', architecture: 'ppc64' },
    'linux/ppc64le': { os: 'linux', architecture: 'ppc64le' }, 'linux/s390x': { os: 'linux', architecture: 's390x' },
  };
  return table[`${os}/${arch}`];
}

/** A Kubernetes-style resource quantity ("100m", "1Gi", "1e3"), as the resource isolators use. */
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

export function checkQuantity(value: unknown, field: string): void {
  if (typeof value !== 'string') throw new RuleError(`${field} must be a quantity string such as "100m" or "1Gi"`);
  if (!QUANTITY.test(value)) throw new RuleError(`${field} "${value}" is not a resource quantity`);
}

/** RFC 3339 date-time, as Go's time.RFC3339 parses it. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

export function checkDate(value: string, field: string): void {
  if (!RFC3339.test(value) || Number.isNaN(Date.parse(value))) throw new RuleError(`${field} "${value}" is not an RFC 3339 date`);
}

export function checkHttpUrl(value: string, field: string): void {
  let scheme: string;
  try {
    scheme = new URL(value).protocol;
  } catch {
    scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(value)?.[1]?.toLowerCase() + ':';
  }
  if (scheme !== 'http:' && scheme !== 'https:') throw new RuleError(`${field} "${value}": the URL scheme must be http or https`);
}
