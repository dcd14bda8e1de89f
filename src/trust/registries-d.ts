import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError, ioError } from '../oci/errors.js';
import { loadYaml } from '../oci/yaml.js';
import type { ImageIdentity } from './image-identity.js';
import { containersConfigPath } from './containers-config.js';

/**
 * containers-registries.d(5): where signatures of docker images live. Every *.yaml file in
 * the directory is read; a scope defined twice, or `default-docker` twice, is an error (as in
 * containers/image). The old key names `sigstore`/`sigstore-staging` mean lookaside.
 */
export interface SignatureStorage {
  /** Where simple signatures are read from (file:// or http(s)://). */
  lookaside?: string;
  /** Where they are written (default: lookaside). */
  lookasideStaging?: string;
  /** Whether cosign-style `sha256-<hex>.sig` attachments are read and written. */
  useSigstoreAttachments: boolean;
}

export interface RegistriesD {
  /** The files read, for messages. */
  dir: string;
  defaultDocker: SignatureStorage | undefined;
  docker: Map<string, SignatureStorage>;
}

/** The directory podman would read: $HOME/.config/containers/registries.d, else /etc/containers/registries.d. */
export async function defaultRegistriesDDir(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return containersConfigPath('registries.d', env);
}

function storage(value: unknown, where: string): SignatureStorage {
  const bad = (why: string): never => {
    throw new BasaltError('invalid', `registries.d ${where}: ${why}`, { hint: 'see containers-registries.d(5)' });
  };
  if (value === null || value === undefined) return { useSigstoreAttachments: false };
  if (typeof value !== 'object' || Array.isArray(value)) bad('expected a mapping');
  const o = value as Record<string, unknown>;
  const allowed = ['lookaside', 'lookaside-staging', 'sigstore', 'sigstore-staging', 'use-sigstore-attachments'];
  for (const k of Object.keys(o)) if (!allowed.includes(k)) bad(`unknown key "${k}"`);
  const url = (k: string): string | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !/^(file|https?):\/\//.test(v)) bad(`${k} must be a file://, http:// or https:// URL`);
    return v as string;
  };
  const out: SignatureStorage = { useSigstoreAttachments: false };
  const lookaside = url('lookaside') ?? url('sigstore');
  const staging = url('lookaside-staging') ?? url('sigstore-staging');
  if (lookaside) out.lookaside = lookaside;
  if (staging) out.lookasideStaging = staging;
  const attach = o['use-sigstore-attachments'];
  if (attach !== undefined && typeof attach !== 'boolean') bad('use-sigstore-attachments must be true or false');
  out.useSigstoreAttachments = attach === true;
  return out;
}

/** Reads every *.yaml in `dir`; a missing directory is an empty configuration. */
export async function loadRegistriesD(dir: string): Promise<RegistriesD> {
  const out: RegistriesD = { dir, defaultDocker: undefined, docker: new Map() };
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.yaml')).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw ioError(`reading registries.d ${dir}`, e);
  }
  for (const name of names) {
    const file = join(dir, name);
    let doc: unknown;
    try {
      doc = (await loadYaml()).parse(await readFile(file, 'utf8'));
    } catch (e) {
      if (e instanceof BasaltError) throw e;
      throw new BasaltError('invalid', `registries.d file ${file} is not valid YAML (${(e as Error).message})`, { hint: 'fix or remove the file' });
    }
    if (doc === null || doc === undefined) continue;
    if (typeof doc !== 'object' || Array.isArray(doc)) throw new BasaltError('invalid', `registries.d file ${file}: expected a mapping`);
    const o = doc as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (k !== 'default-docker' && k !== 'docker') throw new BasaltError('invalid', `registries.d file ${file}: unknown key "${k}"`, { hint: 'see containers-registries.d(5)' });
    if (o['default-docker'] !== undefined) {
      if (out.defaultDocker) throw new BasaltError('invalid', `registries.d ${dir}: default-docker is defined more than once (again in ${name})`);
      out.defaultDocker = storage(o['default-docker'], `${file} default-docker`);
    }
    if (o.docker !== undefined && o.docker !== null) {
      if (typeof o.docker !== 'object' || Array.isArray(o.docker)) throw new BasaltError('invalid', `registries.d file ${file}: docker must map scopes to settings`);
      for (const [scope, v] of Object.entries(o.docker as Record<string, unknown>)) {
        if (out.docker.has(scope)) throw new BasaltError('invalid', `registries.d ${dir}: scope "${scope}" is defined more than once (again in ${name})`);
        out.docker.set(scope, storage(v, `${file} docker["${scope}"]`));
      }
    }
  }
  return out;
}

/**
 * The settings for an image: the most specific docker scope that names it, else
 * default-docker. Non-docker images have none (their signatures live beside them).
 */
export function signatureStorageFor(config: RegistriesD, identity: ImageIdentity): SignatureStorage {
  if (identity.transport === 'docker') {
    // Scopes in registries.d are written without tags: identity first, then namespaces.
    for (const scope of [identity.policyIdentity, ...identity.policyNamespaces]) {
      const s = config.docker.get(scope);
      if (s) return s;
    }
    return config.defaultDocker ?? { useSigstoreAttachments: false };
  }
  return { useSigstoreAttachments: true };
}
