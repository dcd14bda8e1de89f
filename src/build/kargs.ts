import { parse as parseToml } from 'smol-toml';
import { BasaltError } from '../oci/errors.js';

/**
 * bootc's kernel-argument files: /usr/lib/bootc/kargs.d/*.toml, each
 *
 *     kargs = ["console=ttyS0", "quiet"]
 *     match-architectures = ["x86_64"]   # optional
 *
 * applied in file-name order; a file whose match-architectures does not name the machine's
 * architecture (Rust's names: x86_64, aarch64) contributes nothing.
 */
export const KARGS_DIR = 'usr/lib/bootc/kargs.d';

export interface KargsFile {
  kargs: string[];
  matchArchitectures?: string[];
}

function stringList(value: unknown, key: string, file: string): string[] {
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string'))
    throw new BasaltError('invalid', `${file}: "${key}" must be an array of strings`, { hint: `write ${key} = ["a", "b"]` });
  return value;
}

/** Parses one kargs.d file; `file` names it in errors. */
export function parseKargsFile(text: string, file: string): KargsFile {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw new BasaltError('invalid', `${file}: not valid TOML: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
  const unknown = Object.keys(doc).filter((k) => k !== 'kargs' && k !== 'match-architectures');
  if (unknown.length) throw new BasaltError('invalid', `${file}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}`, { hint: 'a kargs.d file has only kargs and match-architectures' });
  if (!('kargs' in doc)) throw new BasaltError('invalid', `${file}: missing "kargs"`, { hint: 'write kargs = ["arg", ...]' });
  const kargs = stringList(doc.kargs, 'kargs', file);
  for (const k of kargs)
    if (k === '' || /\s/.test(k)) throw new BasaltError('invalid', `${file}: kernel argument "${k}" is empty or contains whitespace`, { hint: 'give each argument as its own string' });
  const out: KargsFile = { kargs };
  if ('match-architectures' in doc) out.matchArchitectures = stringList(doc['match-architectures'], 'match-architectures', file);
  return out;
}

/** Rust's name for this machine's architecture, as match-architectures uses. */
export function rustArch(nodeArch: string = process.arch): string {
  return ({ x64: 'x86_64', arm64: 'aarch64', ppc64: 'powerpc64', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[nodeArch] ?? nodeArch;
}

/** The kernel arguments a set of kargs.d files gives on `arch`, files taken in name order. */
export function kargsFor(files: ReadonlyArray<{ name: string; text: string }>, arch: string = rustArch()): string[] {
  const sorted = [...files].filter((f) => f.name.endsWith('.toml')).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const f of sorted) {
    const parsed = parseKargsFile(f.text, f.name);
    if (parsed.matchArchitectures && !parsed.matchArchitectures.includes(arch)) continue;
    out.push(...parsed.kargs);
  }
  return out;
}
