import { readFile } from 'node:fs/promises';
import { BasaltError, ioError } from '../oci/errors.js';
import { parseReference } from '../oci/reference.js';
import type { ImageIdentity } from './image-identity.js';
import { containersConfigPath } from './containers-config.js';

/**
 * containers-policy.json(5): which images are accepted, per transport and scope. Parsed as
 * strictly as containers/image does (unknown fields and unknown types are errors), so a
 * policy basalt accepts means the same to podman.
 */

export type SignedIdentity =
  | { type: 'matchExact' }
  | { type: 'matchRepoDigestOrExact' }
  | { type: 'matchRepository' }
  | { type: 'exactReference'; dockerReference: string }
  | { type: 'exactRepository'; dockerRepository: string }
  | { type: 'remapIdentity'; prefix: string; signedPrefix: string };

export interface KeySource {
  /** Key files (keyPath or keyPaths). */
  paths: string[];
  /** Inline keys (keyData or keyDatas), decoded from base64. */
  data: Buffer[];
}

export type Requirement =
  | { type: 'insecureAcceptAnything' }
  | { type: 'reject' }
  | { type: 'signedBy'; keyType: 'GPGKeys'; keys: KeySource; signedIdentity: SignedIdentity }
  | {
      type: 'sigstoreSigned';
      keys: KeySource;
      /** Keyless: signatures whose Fulcio certificate chains to this CA and names this identity. */
      fulcio: FulcioRule | undefined;
      /** When given, every signature must carry a Rekor SET signed by one of these keys. */
      rekorKeys: KeySource | undefined;
      /** containers/image's `pki` (X.509 without Fulcio) is parsed and refused: not implemented. */
      pki: boolean;
      signedIdentity: SignedIdentity;
    };

export interface FulcioRule {
  /** The CA certificates (caPath or caData, PEM). */
  ca: KeySource;
  oidcIssuer: string;
  subjectEmail: string;
}

export interface Policy {
  /** The file it came from, for messages. */
  source: string;
  default: Requirement[];
  /** transport → scope ("" is the transport's default) → requirements. */
  transports: Map<string, Map<string, Requirement[]>>;
}

/** The policy file podman would read: $HOME/.config/containers/policy.json, else /etc/containers/policy.json. */
export async function defaultPolicyPath(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return containersConfigPath('policy.json', env);
}

export async function loadPolicy(path: string): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw ioError(`reading signature policy ${path}`, e);
  }
  return parsePolicy(text, path);
}

class PolicyParser {
  constructor(private readonly file: string) {}

  fail(where: string, why: string): never {
    throw new BasaltError('invalid', `signature policy ${this.file}: ${where}: ${why}`, { hint: 'fix the file (see containers-policy.json(5)); nothing was accepted under it' });
  }

  object(v: unknown, where: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(where, 'expected a JSON object');
    return v as Record<string, unknown>;
  }

  string(v: unknown, where: string): string {
    if (typeof v !== 'string' || v === '') this.fail(where, 'expected a non-empty string');
    return v;
  }

  only(obj: Record<string, unknown>, allowed: string[], where: string): void {
    for (const k of Object.keys(obj)) if (!allowed.includes(k)) this.fail(where, `unknown field "${k}"`);
  }

  requirements(v: unknown, where: string): Requirement[] {
    if (!Array.isArray(v)) this.fail(where, 'expected a list of requirements');
    if (v.length === 0) this.fail(where, 'an empty list of requirements is not allowed (write [{"type": "reject"}] to refuse)');
    return v.map((r, i) => this.requirement(r, `${where}[${i}]`));
  }

  keys(obj: Record<string, unknown>, where: string, names: { path: string; paths: string; data: string; datas?: string }): KeySource {
    const paths: string[] = [];
    const data: Buffer[] = [];
    let given = 0;
    if (obj[names.path] !== undefined) {
      paths.push(this.string(obj[names.path], `${where}.${names.path}`));
      given++;
    }
    if (obj[names.paths] !== undefined) {
      const list = obj[names.paths];
      if (!Array.isArray(list) || list.length === 0) this.fail(`${where}.${names.paths}`, 'expected a non-empty list of paths');
      list.forEach((p, i) => paths.push(this.string(p, `${where}.${names.paths}[${i}]`)));
      given++;
    }
    for (const key of [names.data, names.datas]) {
      if (key === undefined || obj[key] === undefined) continue;
      const list = key === names.data ? [obj[key]] : obj[key];
      if (!Array.isArray(list) || list.length === 0) this.fail(`${where}.${key}`, 'expected a non-empty list');
      for (const d of list) {
        const s = this.string(d, `${where}.${key}`);
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) this.fail(`${where}.${key}`, 'not base64');
        data.push(Buffer.from(s, 'base64'));
      }
      given++;
    }
    if (given !== 1) this.fail(where, `exactly one of ${[names.path, names.paths, names.data, names.datas].filter(Boolean).join(', ')} is required`);
    return { paths, data };
  }

  requirement(v: unknown, where: string): Requirement {
    const r = this.object(v, where);
    const type = this.string(r.type, `${where}.type`);
    switch (type) {
      case 'insecureAcceptAnything':
      case 'reject':
        this.only(r, ['type'], where);
        return { type };
      case 'signedBy': {
        this.only(r, ['type', 'keyType', 'keyPath', 'keyPaths', 'keyData', 'signedIdentity'], where);
        const keyType = this.string(r.keyType, `${where}.keyType`);
        if (keyType !== 'GPGKeys') this.fail(`${where}.keyType`, `"${keyType}" is not supported (containers/image implements only GPGKeys)`);
        return { type, keyType, keys: this.keys(r, where, { path: 'keyPath', paths: 'keyPaths', data: 'keyData' }), signedIdentity: this.identity(r.signedIdentity, `${where}.signedIdentity`) };
      }
      case 'sigstoreSigned': {
        this.only(r, ['type', 'keyPath', 'keyPaths', 'keyData', 'keyDatas', 'fulcio', 'rekorPublicKeyPath', 'rekorPublicKeyPaths', 'rekorPublicKeyData', 'rekorPublicKeyDatas', 'pki', 'signedIdentity'], where);
        const hasKey = ['keyPath', 'keyPaths', 'keyData', 'keyDatas'].some((k) => r[k] !== undefined);
        const fulcio = r.fulcio === undefined ? undefined : this.object(r.fulcio, `${where}.fulcio`);
        // containers/image: the signer is identified in exactly one way.
        if ([hasKey, fulcio !== undefined, r.pki !== undefined].filter(Boolean).length !== 1) this.fail(where, 'exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio or pki is required');
        const keys = hasKey ? this.keys(r, where, { path: 'keyPath', paths: 'keyPaths', data: 'keyData', datas: 'keyDatas' }) : { paths: [], data: [] };
        const rekor = ['rekorPublicKeyPath', 'rekorPublicKeyPaths', 'rekorPublicKeyData', 'rekorPublicKeyDatas'].some((k) => r[k] !== undefined);
        if (fulcio && !rekor) this.fail(where, 'fulcio requires a Rekor public key as well');
        return {
          type,
          keys,
          fulcio: fulcio === undefined ? undefined : this.fulcio(fulcio, `${where}.fulcio`),
          rekorKeys: rekor ? this.keys(r, where, { path: 'rekorPublicKeyPath', paths: 'rekorPublicKeyPaths', data: 'rekorPublicKeyData', datas: 'rekorPublicKeyDatas' }) : undefined,
          pki: r.pki !== undefined,
          signedIdentity: this.identity(r.signedIdentity, `${where}.signedIdentity`),
        };
      }
      default:
        return this.fail(`${where}.type`, `unknown requirement type "${type}"`);
    }
  }

  fulcio(f: Record<string, unknown>, where: string): FulcioRule {
    this.only(f, ['caPath', 'caData', 'oidcIssuer', 'subjectEmail'], where);
    return {
      ca: this.keys(f, where, { path: 'caPath', paths: 'caPaths', data: 'caData' }),
      oidcIssuer: this.string(f.oidcIssuer, `${where}.oidcIssuer`),
      subjectEmail: this.string(f.subjectEmail, `${where}.subjectEmail`),
    };
  }

  identity(v: unknown, where: string): SignedIdentity {
    if (v === undefined) return { type: 'matchRepoDigestOrExact' };
    const o = this.object(v, where);
    const type = this.string(o.type, `${where}.type`);
    switch (type) {
      case 'matchExact':
      case 'matchRepoDigestOrExact':
      case 'matchRepository':
        this.only(o, ['type'], where);
        return { type };
      case 'exactReference': {
        this.only(o, ['type', 'dockerReference'], where);
        const dockerReference = this.string(o.dockerReference, `${where}.dockerReference`);
        const ref = this.docker(dockerReference, `${where}.dockerReference`);
        if (ref.tag === undefined && ref.digest === undefined) this.fail(`${where}.dockerReference`, `"${dockerReference}" has no tag or digest`);
        return { type, dockerReference };
      }
      case 'exactRepository': {
        this.only(o, ['type', 'dockerRepository'], where);
        const dockerRepository = this.string(o.dockerRepository, `${where}.dockerRepository`);
        const ref = this.docker(dockerRepository, `${where}.dockerRepository`);
        if (ref.tag !== undefined || ref.digest !== undefined) this.fail(`${where}.dockerRepository`, `"${dockerRepository}" must be a repository without tag or digest`);
        return { type, dockerRepository };
      }
      case 'remapIdentity': {
        this.only(o, ['type', 'prefix', 'signedPrefix'], where);
        const prefix = this.string(o.prefix, `${where}.prefix`);
        const signedPrefix = this.string(o.signedPrefix, `${where}.signedPrefix`);
        for (const [k, p] of [['prefix', prefix], ['signedPrefix', signedPrefix]] as const)
          if (!isValidPrefix(p)) this.fail(`${where}.${k}`, `"${p}" is not a host, host/namespace or host/repository`);
        return { type, prefix, signedPrefix };
      }
      default:
        return this.fail(`${where}.type`, `unknown signedIdentity type "${type}"`);
    }
  }

  docker(text: string, where: string): ReturnType<typeof parseReference> {
    try {
      return parseReference(text);
    } catch (e) {
      return this.fail(where, (e as Error).message);
    }
  }
}

/** remapIdentity prefixes and registry scopes: a host[:port], or host/path without tag or digest. */
export function isValidPrefix(p: string): boolean {
  return /^[A-Za-z0-9.-]+(:\d+)?(\/[a-z0-9._-]+)*$/.test(p);
}

export function parsePolicy(text: string, file: string): Policy {
  const p = new PolicyParser(file);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new BasaltError('invalid', `signature policy ${file} is not valid JSON (${(e as Error).message})`, { hint: 'fix the file (see containers-policy.json(5)); nothing was accepted under it' });
  }
  const top = p.object(doc, 'top level');
  p.only(top, ['default', 'transports'], 'top level');
  if (top.default === undefined) p.fail('top level', '"default" is required');
  const policy: Policy = { source: file, default: p.requirements(top.default, 'default'), transports: new Map() };
  if (top.transports !== undefined) {
    const transports = p.object(top.transports, 'transports');
    for (const [name, scopesValue] of Object.entries(transports)) {
      const scopes = p.object(scopesValue, `transports.${name}`);
      const map = new Map<string, Requirement[]>();
      for (const [scope, reqs] of Object.entries(scopes)) map.set(scope, p.requirements(reqs, `transports.${name}["${scope}"]`));
      policy.transports.set(name, map);
    }
  }
  return policy;
}

/**
 * The requirements that apply to an image: the most specific scope of its transport that the
 * policy names (identity, then namespaces from most to least specific, then the transport's
 * "" scope), else the global default — containers/image's order.
 */
export function requirementsFor(policy: Policy, identity: ImageIdentity): { scope: string; requirements: Requirement[] } {
  const scopes = policy.transports.get(identity.transport);
  if (scopes) {
    for (const scope of [identity.policyIdentity, ...identity.policyNamespaces, '']) {
      const reqs = scopes.get(scope);
      if (reqs) return { scope: `transports.${identity.transport}["${scope}"]`, requirements: reqs };
    }
  }
  return { scope: 'default', requirements: policy.default };
}

/** Whether these requirements let an image through without any signature. */
export function acceptsUnsigned(requirements: readonly Requirement[]): boolean {
  return requirements.every((r) => r.type === 'insecureAcceptAnything');
}
