import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BasaltError, ioError } from '../errors.js';
import { writeFileAtomic } from '../fsutil.js';
import { credentialsFromHelper } from './cred-helper.js';

/** What is sent to a registry or its token server. */
export type Credentials =
  | { username: string; password: string }
  /** An OAuth2 refresh token from `docker login` against a token server (auth.json `identitytoken`). */
  | { username: string; identityToken: string };

export interface CredentialLookupOptions {
  /** `--creds user:password`: wins over every file. */
  creds?: string;
  /** `--authfile FILE` (REGISTRY_AUTH_FILE when unset). */
  authFile?: string;
  env?: NodeJS.ProcessEnv;
  homeDir?: string;
}

export interface FoundCredentials {
  credentials: Credentials;
  /** Where they came from (`--creds`, or the file and key), for messages. */
  source: string;
}

/** Splits `user:password` at the first colon (passwords may contain colons). */
export function parseCredsOption(creds: string): Credentials {
  const colon = creds.indexOf(':');
  if (colon <= 0 || colon === creds.length - 1)
    throw new BasaltError('usage', '--creds must be USERNAME:PASSWORD', { hint: 'basalt cannot prompt for a password; pass both parts' });
  return { username: creds.slice(0, colon), password: creds.slice(colon + 1) };
}

interface AuthFilePath {
  path: string;
  /** ~/.dockercfg: the entries are the top-level object, not under `auths`. */
  legacy: boolean;
}

/**
 * The auth files consulted, first match wins, in containers/image's order: the explicit
 * --authfile (or REGISTRY_AUTH_FILE), then ${XDG_RUNTIME_DIR}/containers/auth.json (for
 * root without XDG_RUNTIME_DIR: /run/containers/0/auth.json, where podman writes),
 * ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json, docker's config.json
 * ($DOCKER_CONFIG or ~/.docker) and the legacy ~/.dockercfg.
 */
export function authFileSearchPath(options: CredentialLookupOptions = {}): AuthFilePath[] {
  const env = options.env ?? process.env;
  const home = options.homeDir ?? env.HOME ?? homedir();
  const paths: AuthFilePath[] = [];
  const explicit = options.authFile ?? env.REGISTRY_AUTH_FILE;
  if (explicit) paths.push({ path: explicit, legacy: false });
  paths.push({ path: runtimeAuthFile(env), legacy: false });
  paths.push({ path: join(env.XDG_CONFIG_HOME || join(home, '.config'), 'containers/auth.json'), legacy: false });
  paths.push({ path: join(env.DOCKER_CONFIG || join(home, '.docker'), 'config.json'), legacy: false });
  paths.push({ path: join(home, '.dockercfg'), legacy: true });
  return paths;
}

function runtimeAuthFile(env: NodeJS.ProcessEnv): string {
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'containers/auth.json');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return `/run/containers/${uid}/auth.json`;
}

/** The file `login` writes and `logout` edits when no --authfile is given (podman's default). */
export function defaultAuthFile(options: CredentialLookupOptions = {}): string {
  const env = options.env ?? process.env;
  return options.authFile ?? env.REGISTRY_AUTH_FILE ?? runtimeAuthFile(env);
}

type AuthEntries = Record<string, Record<string, unknown>>;

async function readJsonObject(path: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw ioError(`reading auth file ${path}`, e);
  }
  if (text.trim() === '') return {};
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new BasaltError('invalid', `auth file ${path} is not valid JSON (${(e as Error).message})`, { hint: 'fix or remove the file' });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new BasaltError('invalid', `auth file ${path} is not a JSON object`, { hint: 'fix or remove the file' });
  return doc as Record<string, unknown>;
}

function entriesOf(doc: Record<string, unknown>, legacy: boolean): AuthEntries {
  const raw = legacy ? doc : doc.auths;
  if (typeof raw !== 'object' || raw === null) return {};
  const out: AuthEntries = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) if (typeof v === 'object' && v !== null) out[k] = v as Record<string, unknown>;
  return out;
}

/**
 * Normalises an auth file key: docker's old `https://index.docker.io/v1/` style keys name a
 * host (scheme and path dropped); other keys are `host` or `host/namespace[/repo]`.
 */
export function normaliseAuthKey(key: string): string {
  let k = key;
  const scheme = /^https?:\/\//.exec(k);
  if (scheme) {
    k = k.slice(scheme[0].length);
    const slash = k.indexOf('/');
    if (slash >= 0) k = k.slice(0, slash);
  }
  if (k === 'index.docker.io' || k.startsWith('index.docker.io/')) k = `docker.io${k.slice('index.docker.io'.length)}`;
  return k.replace(/\/+$/, '');
}

/** Keys to try for a repository, most specific first: host/a/b, host/a, host. */
export function authKeysFor(registry: string, repository?: string): string[] {
  const keys: string[] = [];
  if (repository) {
    const parts = repository.split('/');
    for (let n = parts.length; n >= 1; n--) keys.push(`${registry}/${parts.slice(0, n).join('/')}`);
  }
  keys.push(registry);
  return keys;
}

function decodeEntry(entry: Record<string, unknown>, where: string): Credentials | undefined {
  let username = typeof entry.username === 'string' ? entry.username : '';
  let password = typeof entry.password === 'string' ? entry.password : '';
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new BasaltError('invalid', `${where}: the "auth" field is not base64 of user:password`, { hint: 'log in again to rewrite it' });
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') return { username, identityToken: entry.identitytoken };
  if (username === '' && password === '') return undefined;
  return { username, password };
}

/**
 * Finds credentials for `registry` (and optionally `repository`): `--creds` first, then the
 * first auth file in the search path with a matching key; within a file the most specific
 * key (host/namespace/repo over host) wins.
 */
export async function lookupCredentials(registry: string, repository: string | undefined, options: CredentialLookupOptions = {}): Promise<FoundCredentials | undefined> {
  if (options.creds !== undefined) return { credentials: parseCredsOption(options.creds), source: '--creds' };
  const wanted = authKeysFor(registry, repository);
  for (const file of authFileSearchPath(options)) {
    const doc = await readJsonObject(file.path);
    if (doc === undefined) continue;
    // A credential helper named for the registry wins over the file's own entries (as in
    // containers/image); docker's credsStore is the fallback when no entry matches.
    const helpers = !file.legacy && typeof doc.credHelpers === 'object' && doc.credHelpers !== null ? (doc.credHelpers as Record<string, unknown>) : {};
    const helper = helpers[registry];
    if (typeof helper === 'string' && helper !== '') {
      const fromHelper = await credentialsFromHelper(helper, registry, options.env);
      if (fromHelper !== undefined) return { credentials: fromHelper, source: `docker-credential-${helper} (credHelpers in ${file.path})` };
    }
    const entries = entriesOf(doc, file.legacy);
    const byKey = new Map<string, { key: string; entry: Record<string, unknown> }>();
    for (const [key, entry] of Object.entries(entries)) {
      const norm = normaliseAuthKey(key);
      // An exact (already normalised) key wins over a legacy URL key naming the same host.
      if (!byKey.has(norm) || key === norm) byKey.set(norm, { key, entry });
    }
    for (const key of wanted) {
      const hit = byKey.get(key);
      if (hit === undefined) continue;
      const credentials = decodeEntry(hit.entry, `auth file ${file.path} entry "${hit.key}"`);
      if (credentials !== undefined) return { credentials, source: `${file.path} (${hit.key})` };
    }
    if (!file.legacy && typeof doc.credsStore === 'string' && doc.credsStore !== '') {
      const fromStore = await credentialsFromHelper(doc.credsStore, registry, options.env);
      if (fromStore !== undefined) return { credentials: fromStore, source: `docker-credential-${doc.credsStore} (credsStore in ${file.path})` };
    }
  }
  return undefined;
}

/** Validates a login key: `host[:port]` or `host[:port]/namespace…`, no scheme, no tag. */
export function loginKey(registry: string): string {
  const key = normaliseAuthKey(registry);
  if (key === '' || /[@\s]/.test(key) || /:[^/]*\//.test(key.replace(/^[^/]*/, '')))
    throw new BasaltError('usage', `"${registry}" is not a registry name`, { hint: 'write it as HOST[:PORT] or HOST[:PORT]/NAMESPACE' });
  return key;
}

/** Stores credentials under `key` in the auth file, keeping every other entry and field. */
export async function storeCredentials(authFile: string, key: string, username: string, password: string): Promise<void> {
  const doc = (await readJsonObject(authFile)) ?? {};
  const auths = typeof doc.auths === 'object' && doc.auths !== null ? (doc.auths as Record<string, unknown>) : {};
  auths[key] = { auth: Buffer.from(`${username}:${password}`, 'utf8').toString('base64') };
  doc.auths = auths;
  await writeFileAtomic(authFile, `${JSON.stringify(doc, null, '\t')}\n`, 0o600);
}

/**
 * Removes `key` (or, with `all`, every entry) from the auth file. Returns whether an entry
 * was removed; the file keeps its other fields.
 */
export async function removeCredentials(authFile: string, key: string | { all: true }): Promise<boolean> {
  const doc = await readJsonObject(authFile);
  if (doc === undefined) return false;
  const auths = typeof doc.auths === 'object' && doc.auths !== null ? (doc.auths as Record<string, unknown>) : {};
  let removed = false;
  if (typeof key === 'object') {
    removed = Object.keys(auths).length > 0;
    doc.auths = {};
  } else {
    for (const k of Object.keys(auths)) {
      if (normaliseAuthKey(k) === key) {
        delete auths[k];
        removed = true;
      }
    }
    doc.auths = auths;
  }
  if (removed) await writeFileAtomic(authFile, `${JSON.stringify(doc, null, '\t')}\n`, 0o600);
  return removed;
}
