import { readdir, readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { BasaltError, ioError } from '../errors.js';
import { createPool, type ConnectionPool, type PoolTls } from './http-client.js';

/** TLS material for one registry, in the certs.d layout containers/image uses. */
export interface TlsMaterial {
  /** Extra CA certificates (PEM), added to the system roots. */
  ca: string[];
  /** Client certificate and key (PEM), when the directory has a *.cert/*.key pair. */
  cert?: string;
  key?: string;
  /** Directories that were read, for messages. */
  dirs: string[];
}

async function listDir(dir: string): Promise<string[] | undefined> {
  try {
    return (await readdir(dir)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw ioError(`reading certificate directory ${dir}`, e);
  }
}

/**
 * Reads `*.crt` (CA), `*.cert` + `*.key` (client pair) from the directories, as
 * containers/image's tlsclientconfig does: a `.key` without its `.cert` (or the reverse) is
 * an error rather than silently ignored.
 */
export async function loadTlsMaterial(dirs: readonly string[]): Promise<TlsMaterial> {
  const out: TlsMaterial = { ca: [], dirs: [] };
  for (const dir of dirs) {
    const names = await listDir(dir);
    if (names === undefined) continue;
    out.dirs.push(dir);
    for (const name of names) {
      const path = join(dir, name);
      if (name.endsWith('.crt')) out.ca.push(await readFile(path, 'utf8').catch((e: unknown) => Promise.reject(ioError(`reading CA ${path}`, e))));
      if (name.endsWith('.cert')) {
        const keyName = `${name.slice(0, -'.cert'.length)}.key`;
        if (!names.includes(keyName)) throw new BasaltError('invalid', `client certificate ${path} has no matching key ${keyName}`, { hint: 'put the key beside the certificate or remove the certificate' });
        if (out.cert === undefined) {
          out.cert = await readFile(path, 'utf8');
          out.key = await readFile(join(dir, keyName), 'utf8');
        }
      }
      if (name.endsWith('.key')) {
        const certName = `${name.slice(0, -'.key'.length)}.cert`;
        if (!names.includes(certName)) throw new BasaltError('invalid', `client key ${path} has no matching certificate ${certName}`, { hint: 'put the certificate beside the key or remove the key' });
      }
    }
  }
  return out;
}

/**
 * The certs.d directories consulted for a registry host (`host:port`): an explicit certDir
 * replaces the defaults, as skopeo's --cert-dir does.
 */
export function certDirsFor(registry: string, certDir: string | undefined, home = homedir()): string[] {
  if (certDir !== undefined) return [certDir];
  return [join(home, '.config/containers/certs.d', registry), join('/etc/containers/certs.d', registry), join('/etc/docker/certs.d', registry)];
}

export interface DispatcherSettings {
  verify: boolean;
  tls: TlsMaterial;
}

const pools = new Map<string, ConnectionPool>();

/**
 * A keep-alive connection pool for the given TLS settings, shared by every client with the
 * same settings so a copy between two repositories of one registry reuses connections.
 */
export function dispatcherFor(settings: DispatcherSettings): ConnectionPool {
  const key = JSON.stringify([settings.verify, settings.tls.ca, settings.tls.cert ?? '', settings.tls.key ?? '']);
  let pool = pools.get(key);
  if (pool === undefined) {
    const tls: PoolTls = { rejectUnauthorized: settings.verify };
    // A `ca` option replaces Node's roots, so the extra CAs are added to them, not substituted.
    if (settings.tls.ca.length > 0) tls.ca = [...rootCertificates, ...settings.tls.ca];
    if (settings.tls.cert !== undefined) tls.cert = settings.tls.cert;
    if (settings.tls.key !== undefined) tls.key = settings.tls.key;
    pool = createPool(tls);
    pools.set(key, pool);
  }
  return pool;
}
