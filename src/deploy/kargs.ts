import { parse } from 'smol-toml';
import { BasaltError } from '../oci/errors.js';
import { runRepo } from './ostree-tool.js';

/** Where bootable images declare their kernel arguments (bootc's convention). */
export const KARGS_DIR = '/usr/lib/bootc/kargs.d';

/** OCI architecture names → the Rust/uname names kargs.d's match-architectures uses. */
const UNAME_ARCH: Record<string, string> = { amd64: 'x86_64', arm64: 'aarch64', '386': 'x86', arm: 'arm', ppc64le: 'powerpc64', s390x: 's390x', riscv64: 'riscv64' };

export function unameArchitecture(ociArchitecture: string): string {
  return UNAME_ARCH[ociArchitecture] ?? ociArchitecture;
}

/**
 * One kargs.d file: `kargs = ["a", "b=c"]` and optionally `match-architectures = [...]`;
 * returns the arguments that apply to `architecture` (uname style). Unknown keys are refused,
 * as bootc does, so a typo does not silently drop arguments.
 */
export function parseKargsToml(text: string, file: string, architecture: string): string[] {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new BasaltError('invalid', `${file}: not valid TOML: ${(e as Error).message}`, { hint: 'write kargs = ["arg", ...]' });
  }
  for (const key of Object.keys(doc)) if (key !== 'kargs' && key !== 'match-architectures') throw new BasaltError('invalid', `${file}: unknown key "${key}"`, { hint: 'kargs.d files hold kargs and match-architectures only' });
  const strings = (key: string): string[] | undefined => {
    const v = doc[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new BasaltError('invalid', `${file}: ${key} must be an array of strings`);
    return v as string[];
  };
  const kargs = strings('kargs');
  if (kargs === undefined) throw new BasaltError('invalid', `${file}: no kargs key`, { hint: 'write kargs = ["arg", ...]' });
  for (const k of kargs) if (k.trim() === '' || /\s/.test(k)) throw new BasaltError('invalid', `${file}: kernel argument "${k}" is empty or contains whitespace`);
  const arches = strings('match-architectures');
  if (arches !== undefined && !arches.includes(architecture)) return [];
  return kargs;
}

/** Every kargs.d argument of a commit, files in name order (as bootc reads them). */
export async function kargsOfCommit(repo: string, commit: string, architecture: string): Promise<string[]> {
  let names: string[];
  try {
    const { stdout } = await runRepo(repo, ['ls', '--nul-filenames-only', commit, KARGS_DIR]);
    names = stdout
      .split('\0')
      .filter((p) => p.startsWith(`${KARGS_DIR}/`) && p.endsWith('.toml'))
      .map((p) => p.slice(KARGS_DIR.length + 1))
      .filter((n) => !n.includes('/'))
      .sort();
  } catch (e) {
    if (e instanceof BasaltError && /No such file|not found/i.test(e.message)) return [];
    throw e;
  }
  const out: string[] = [];
  for (const name of names) {
    const path = `${KARGS_DIR}/${name}`;
    const { stdout } = await runRepo(repo, ['cat', commit, path]);
    out.push(...parseKargsToml(stdout, path, architecture));
  }
  return out;
}
