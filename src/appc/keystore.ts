import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type * as openpgp from 'openpgp';
import { BasaltError } from '../oci/errors.js';
import { writeFileAtomic } from '../oci/fsutil.js';
import { RuleError, checkAcIdentifier } from './identifiers.js';
import { fingerprintOf, readKeyFile } from './signature.js';

/**
 * rkt's trusted-keys layout: `root.d/FINGERPRINT` trusts a key for every name,
 * `prefix.d/PREFIX/FINGERPRINT` for names under PREFIX. Keys live in a system directory
 * (default /usr/lib/rkt/trustedkeys) and a local one (default /etc/rkt/trustedkeys) where
 * basalt writes; an empty local file with a system key's name masks that key.
 */
export interface KeystoreDirs {
  local: string;
  system: string;
}

export const DEFAULT_KEYSTORE: KeystoreDirs = { local: '/etc/rkt/trustedkeys', system: '/usr/lib/rkt/trustedkeys' };

export interface TrustedKey {
  fingerprint: string;
  /** 'root' or the prefix it is trusted for. */
  scope: string;
  path: string;
  key: openpgp.Key;
}

/** Stores the public part of `keyFile` as trusted for `prefix` (or for every name: `root`). */
export async function trustKey(dirs: KeystoreDirs, keyFile: string, scope: { prefix?: string; root?: boolean }): Promise<TrustedKey> {
  if (!scope.root && !scope.prefix) throw new BasaltError('usage', 'say what the key is trusted for: --prefix NAME or --root');
  if (scope.root && scope.prefix) throw new BasaltError('usage', '--prefix and --root exclude each other');
  if (scope.prefix) {
    try {
      checkAcIdentifier(scope.prefix, 'prefix', 'strict');
    } catch (e) {
      throw new BasaltError('usage', `--prefix: ${(e as RuleError).rule}`);
    }
  }
  const keys = await readKeyFile(keyFile);
  if (keys.length !== 1) throw new BasaltError('usage', `${keyFile} holds ${keys.length} keys; trust them one at a time`);
  const key = keys[0] as openpgp.Key;
  const pub = key.toPublic();
  const fingerprint = fingerprintOf(pub);
  const dir = scope.root ? join(dirs.local, 'root.d') : join(dirs.local, 'prefix.d', scope.prefix as string);
  const path = join(dir, fingerprint);
  await writeFileAtomic(path, pub.armor(), 0o644);
  return { fingerprint, scope: scope.root ? 'root' : (scope.prefix as string), path, key: pub };
}

/** The prefixes a name is trusted under, longest first: a/b/c, a/b, a. */
export function prefixesOf(name: string): string[] {
  const parts = name.split('/');
  return parts.map((_p, i) => parts.slice(0, parts.length - i).join('/'));
}

async function filesIn(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const n of names) {
    const st = await stat(join(dir, n)).catch(() => undefined);
    if (st?.isFile()) out.set(n, st.size);
  }
  return out;
}

/** Every key trusted for `name`: its prefixes' keys and root keys, system keys not masked. */
export async function keysForName(dirs: KeystoreDirs, name: string): Promise<TrustedKey[]> {
  const scopes: { scope: string; rel: string }[] = [...prefixesOf(name).map((p) => ({ scope: p, rel: join('prefix.d', p) })), { scope: 'root', rel: 'root.d' }];
  const result: TrustedKey[] = [];
  for (const { scope, rel } of scopes) {
    const local = await filesIn(join(dirs.local, rel));
    const system = await filesIn(join(dirs.system, rel));
    const chosen = new Map<string, string>();
    for (const fp of system.keys()) if (!local.has(fp)) chosen.set(fp, join(dirs.system, rel, fp));
    for (const [fp, size] of local) if (size > 0) chosen.set(fp, join(dirs.local, rel, fp));
    for (const [fp, path] of [...chosen].sort()) {
      const keys = await readKeyFile(path);
      for (const key of keys) {
        if (fingerprintOf(key) !== fp) throw new BasaltError('integrity', `trusted key ${path} has fingerprint ${fingerprintOf(key)}, not the ${fp} its name says`, { hint: 'remove the file and trust the key again' });
        result.push({ fingerprint: fp, scope, path, key });
      }
    }
  }
  return result;
}
