import { BasaltError } from './errors.js';
import type { Descriptor, Platform } from './manifest.js';

/** Parses `os/arch[/variant]`. */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === ''))
    throw new BasaltError('usage', `platform "${s}" is not os/arch[/variant]`, { hint: 'for example --platform linux/amd64 or linux/arm64/v8' });
  const p: Platform = { os: parts[0] as string, architecture: parts[1] as string };
  if (parts[2] !== undefined) p.variant = parts[2];
  return p;
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

const NODE_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The platform of the machine basalt runs on, in OCI terms. */
export function hostPlatform(): Platform {
  const architecture = NODE_ARCH[process.arch] ?? process.arch;
  const p: Platform = { os: process.platform === 'win32' ? 'windows' : process.platform, architecture };
  if (architecture === 'arm64') p.variant = 'v8';
  return p;
}

function normVariant(p: Platform): string | undefined {
  if (p.architecture === 'arm64' && (p.variant === undefined || p.variant === 'v8')) return 'v8';
  return p.variant;
}

/** Whether an index entry's platform satisfies the wanted one (variant only checked when wanted). */
export function platformMatches(have: Platform | undefined, want: Platform): boolean {
  if (!have) return false;
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  if (want.variant !== undefined && normVariant(have) !== normVariant(want)) return false;
  return true;
}

/** Picks the manifest for `want` from an index's entries, or fails listing what is there. */
export function selectPlatform(manifests: Descriptor[], want: Platform, what: string): Descriptor {
  const found = manifests.find((m) => platformMatches(m.platform, want));
  if (found) return found;
  const available = manifests.filter((m) => m.platform).map((m) => formatPlatform(m.platform as Platform));
  throw new BasaltError('not-found', `${what} has no image for ${formatPlatform(want)}`, {
    hint: available.length ? `available: ${available.join(', ')}; choose one with --platform or copy them all with --all` : 'the index declares no platforms; use --all',
  });
}
