import { BasaltError } from '../errors.js';
import { RegistryClient } from './client.js';
import { defaultAuthFile, loginKey, removeCredentials, storeCredentials } from './credentials.js';
import type { RegistryOptions } from './options.js';
import { loadRegistriesConf, pushSettings } from './registries-conf.js';

/**
 * `basalt image login`: verifies the credentials against the registry (a token from its
 * token server, or /v2/ with Basic), then stores them in the auth file (0600, written
 * atomically, other entries kept). `registry` may be `host[:port]` or `host[:port]/namespace`
 * for per-namespace credentials. Returns the file written.
 */
export async function login(registry: string, username: string, password: string, options: RegistryOptions = {}): Promise<string> {
  const key = loginKey(registry);
  if (username === '' || password === '') throw new BasaltError('usage', `login to ${key} needs a username and a password`, { hint: 'pass --username and --password (or --password-stdin)' });
  const host = key.split('/')[0] as string;
  // registries.conf decides whether the registry may be reached over plain http, and may block it.
  const config = await loadRegistriesConf({
    ...(options.registriesConf !== undefined ? { path: options.registriesConf } : {}),
    ...(options.registriesConfDir !== undefined ? { dir: options.registriesConfDir } : {}),
    ...(options.env !== undefined ? { env: options.env } : {}),
  });
  const { insecure } = pushSettings(config, { registry: host, repository: key.includes('/') ? key.slice(host.length + 1) : 'login' });
  await RegistryClient.checkLogin(host, { username, password }, { ...options, insecure: options.insecure ?? insecure });
  const file = defaultAuthFile({ ...(options.authFile !== undefined ? { authFile: options.authFile } : {}), ...(options.env !== undefined ? { env: options.env } : {}) });
  await storeCredentials(file, key, username, password);
  return file;
}

/** `basalt image logout REGISTRY` or `--all`: removes stored credentials. Returns the file edited. */
export async function logout(registry: string | { all: true }, options: RegistryOptions = {}): Promise<string> {
  const file = defaultAuthFile({ ...(options.authFile !== undefined ? { authFile: options.authFile } : {}), ...(options.env !== undefined ? { env: options.env } : {}) });
  const key = typeof registry === 'string' ? loginKey(registry) : registry;
  const removed = await removeCredentials(file, key);
  if (!removed && typeof key === 'string') throw new BasaltError('not-found', `not logged in to ${key} (no entry in ${file})`, { hint: 'pass --authfile if the credentials are stored elsewhere' });
  return file;
}
