import type { Readable } from 'node:stream';
import { BasaltError } from '../errors.js';
import { parseDigest, type Digest } from '../digest.js';
import { createHash } from 'node:crypto';
import { MAX_MANIFEST_BYTES, type ManifestBlob } from '../manifest.js';
import { ALL_MANIFEST_TYPES } from '../media-types.js';
import { formatReference, type ImageReference } from '../reference.js';
import {
  basicAuthorization,
  mergeScopes,
  parseChallenges,
  parseScopeParam,
  parseTokenResponse,
  scopesKey,
  tokenRequest,
  type Challenge,
  type Scope,
  type Token,
} from './auth.js';
import { lookupCredentials, parseCredsOption, type Credentials, type FoundCredentials } from './credentials.js';
import { statusError } from './errors.js';
import type { ConnectionPool } from './http-client.js';
import { abandon, discard, header, headerValues, networkError, readText, sendWithRetry, type HttpMethod, type HttpResponse } from './http.js';
import { retryPolicy, type RegistryOptions, type RetryPolicy } from './options.js';
import { certDirsFor, dispatcherFor, loadTlsMaterial } from './tls.js';
import { enc, repoPathOf as repoPath } from './paths.js';

/** Where a registry answers and how it wants to be authenticated, found by pinging /v2/. */
interface Endpoint {
  origin: string;
  dispatcher: ConnectionPool;
  /** The challenge /v2/ answered with, if any (updated by later 401s). */
  challenge: Challenge | undefined;
}

export interface RegistryRequest {
  method: HttpMethod;
  /** A path under the endpoint (`/v2/…`) or an absolute/relative URL from a Location header. */
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** A stream body is sent once: no retry, no re-authentication (see sendWithRetry). */
  body?: Buffer | Readable;
  /** Access the request needs (for bearer tokens). */
  scopes: Scope[];
  /** Repository it concerns, for messages and repository-specific credentials. */
  repository?: string;
  /** What is being asked for, for messages: `manifest latest`, `blob sha256:…`. */
  what: string;
  maxRedirections?: number;
  signal?: AbortSignal;
  /** Whether a dropped connection may be retried (false when the request may have taken effect). */
  retryNetworkErrors?: boolean;
}

export interface ManifestHead {
  digest: Digest;
  mediaType: string;
  size: number;
}

/** The manifest media types a pull accepts, preferred first. */
export const MANIFEST_ACCEPT = ALL_MANIFEST_TYPES.join(', ');


/**
 * A client for one registry host: finds the endpoint (https, or http when the registry is
 * insecure), authenticates (anonymous, Basic, bearer tokens cached per scope), retries, and
 * maps error answers to BasaltErrors. One instance per registry per operation; connections
 * are pooled across instances.
 */
export class RegistryClient {
  readonly registry: string;
  readonly options: RegistryOptions;
  readonly policy: RetryPolicy;
  private endpointPromise: Promise<Endpoint> | undefined;
  private readonly tokens = new Map<string, Token>();
  private readonly credentialCache = new Map<string, Promise<FoundCredentials | undefined>>();
  /** Credentials forced by checkLogin, bypassing lookup. */
  private readonly fixedCredentials: Credentials | undefined;

  constructor(registry: string, options: RegistryOptions = {}, credentials?: Credentials) {
    this.registry = registry;
    this.options = options;
    this.policy = retryPolicy(options);
    this.fixedCredentials = credentials;
  }

  get log(): ((message: string) => void) | undefined {
    return this.options.log;
  }

  /** Whether plain http and unverified TLS are allowed: --tls-verify wins over registries.conf. */
  get insecure(): boolean {
    if (this.options.tlsVerify !== undefined) return !this.options.tlsVerify;
    return this.options.insecure ?? false;
  }

  private async credentials(repository: string | undefined): Promise<FoundCredentials | undefined> {
    if (this.fixedCredentials !== undefined) return { credentials: this.fixedCredentials, source: 'login' };
    const key = repository ?? '';
    let found = this.credentialCache.get(key);
    if (found === undefined) {
      const lookup: Parameters<typeof lookupCredentials>[2] = {};
      if (this.options.creds !== undefined) lookup.creds = this.options.creds;
      if (this.options.authFile !== undefined) lookup.authFile = this.options.authFile;
      if (this.options.env !== undefined) lookup.env = this.options.env;
      if (this.options.homeDir !== undefined) lookup.homeDir = this.options.homeDir;
      found = lookupCredentials(this.registry, repository, lookup);
      this.credentialCache.set(key, found);
    }
    return found;
  }

  /** The endpoint, pinging /v2/ once: https first; plain http only for an insecure registry. */
  endpoint(): Promise<Endpoint> {
    this.endpointPromise ??= this.discoverEndpoint();
    // A failed discovery is not cached, so a later call (after the registry starts) can succeed.
    this.endpointPromise.catch(() => {
      this.endpointPromise = undefined;
    });
    return this.endpointPromise;
  }

  /*
   * Like skopeo and podman (containers/image's docker client), localhost is NOT implicitly
   * insecure: a plain-http registry on localhost needs --tls-verify=false or insecure = true
   * in registries.conf. (The Docker daemon treats 127.0.0.0/8 as insecure; containers/image
   * does not, and basalt follows containers/image.) An insecure registry is tried with https
   * without verification first, then plain http.
   */
  private async discoverEndpoint(): Promise<Endpoint> {
    const insecure = this.insecure;
    const tls = await loadTlsMaterial(certDirsFor(this.registry, this.options.certDir, this.options.homeDir));
    const dispatcher = dispatcherFor({ verify: !insecure, tls });
    const schemes = insecure ? ['https', 'http'] : ['https'];
    let firstError: unknown;
    for (const scheme of schemes) {
      const origin = `${scheme}://${this.registry}`;
      const url = new URL('/v2/', origin);
      try {
        const { res } = await sendWithRetry(
          dispatcher,
          { url, method: 'GET', headers: this.baseHeaders(), ...(this.options.signal ? { signal: this.options.signal } : {}) },
          { policy: this.policy, what: `contacting registry ${this.registry}`, log: this.log },
        );
        const challenges = parseChallenges(headerValues(res, 'www-authenticate'));
        const status = res.statusCode;
        await discard(res);
        // A plain-http request to a TLS port gets HTTP 400 from Go's server; keep looking.
        if (scheme === 'http' && status === 400 && firstError !== undefined) throw firstError;
        if (status >= 500) throw statusError(status, '', { registry: this.registry, what: 'registry ping /v2/' });
        const challenge = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
        return { origin, dispatcher, challenge };
      } catch (e) {
        firstError ??= e;
        if (e instanceof BasaltError && e.kind !== 'network') throw e;
      }
    }
    throw networkError(firstError, new URL(`https://${this.registry}/v2/`), `contacting registry ${this.registry}`);
  }

  private baseHeaders(): Record<string, string> {
    return { 'user-agent': this.options.userAgent ?? 'basalt' };
  }

  private async fetchToken(challenge: Challenge, scopes: Scope[], repository: string | undefined, dispatcher: ConnectionPool): Promise<Token> {
    const found = await this.credentials(repository);
    const req = tokenRequest(challenge, scopes, found?.credentials);
    const where = repository ? `${this.registry}/${repository}` : this.registry;
    const { res, attempts } = await sendWithRetry(
      dispatcher,
      { url: req.url, method: req.method, headers: { ...this.baseHeaders(), ...req.headers }, ...(req.body ? { body: req.body } : {}), ...(this.options.signal ? { signal: this.options.signal } : {}) },
      { policy: this.policy, what: `getting a token for ${where} from ${req.url.origin}`, log: this.log },
    );
    const body = await readText(res);
    if (res.statusCode === 401 || res.statusCode === 403) {
      if (found !== undefined)
        throw new BasaltError('auth', `authentication failed for ${where}: the token server ${req.url.origin} rejected the credentials from ${found.source}`, {
          hint: `log in again with \`basalt image login ${this.registry}\` or pass --creds`,
        });
      throw new BasaltError('auth', `authentication required for ${where}`, { hint: `log in with \`basalt image login ${this.registry}\` or pass --creds` });
    }
    if (res.statusCode !== 200) throw statusError(res.statusCode, body, { registry: this.registry, ...(repository ? { repository } : {}), what: `token from ${req.url.origin}`, attempts });
    const token = parseTokenResponse(body);
    if (token === undefined) throw new BasaltError('invalid', `token server ${req.url.origin} for ${this.registry} answered without a token`, { hint: 'the token server is misconfigured' });
    return token;
  }

  /** The Authorization header for a request, fetching (or reusing) a token as needed. */
  private async authorization(ep: Endpoint, scopes: Scope[], repository: string | undefined): Promise<string | undefined> {
    const challenge = ep.challenge;
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') {
      const found = await this.credentials(repository);
      if (found === undefined) return undefined;
      if ('identityToken' in found.credentials) return undefined;
      return basicAuthorization(found.credentials);
    }
    if (challenge.scheme === 'bearer') {
      const key = `${challenge.params.realm ?? ''} ${challenge.params.service ?? ''} ${scopesKey(scopes)}`;
      const cached = this.tokens.get(key);
      if (cached !== undefined && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
      const token = await this.fetchToken(challenge, scopes, repository, ep.dispatcher);
      this.tokens.set(key, token);
      return `Bearer ${token.token}`;
    }
    return undefined;
  }

  resolveUrl(ep: Endpoint, path: string, query?: Record<string, string>): URL {
    const url = new URL(path, ep.origin);
    for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
    return url;
  }

  /**
   * Sends a request with authentication and retries. A 401 updates the challenge (a new
   * realm, or more scopes the registry asked for), drops the cached token and tries once
   * more; a second 401 is an 'auth' error. Other statuses are returned for the caller.
   */
  async request(req: RegistryRequest): Promise<{ res: HttpResponse; attempts: number; url: URL }> {
    const ep = await this.endpoint();
    let scopes = mergeScopes(req.scopes);
    const url = this.resolveUrl(ep, req.path, req.query);
    for (let authTry = 0; ; authTry++) {
      const headers: Record<string, string> = { ...this.baseHeaders(), ...req.headers };
      const authz = await this.authorization(ep, scopes, req.repository);
      if (authz !== undefined) headers.authorization = authz;
      const { res, attempts } = await sendWithRetry(
        ep.dispatcher,
        { url, method: req.method, headers, ...(req.body ? { body: req.body } : {}), ...(req.maxRedirections ? { maxRedirections: req.maxRedirections } : {}), ...(req.signal ?? this.options.signal ? { signal: (req.signal ?? this.options.signal) as AbortSignal } : {}) },
        { policy: this.policy, what: `${req.what} at ${this.where(req.repository)}`, log: this.log, retryNetworkErrors: req.retryNetworkErrors ?? true },
      );
      if (res.statusCode !== 401 || (req.body !== undefined && !Buffer.isBuffer(req.body))) return { res, attempts, url };
      const challenges = parseChallenges(headerValues(res, 'www-authenticate'));
      const body = await readText(res);
      const bearer = challenges.find((c) => c.scheme === 'bearer');
      const basic = challenges.find((c) => c.scheme === 'basic');
      const found = await this.credentials(req.repository);
      if (authTry === 0 && bearer !== undefined) {
        // The registry may name the scope it wants (e.g. a mount also needs pull on the source).
        const tokenKeyBefore = `${ep.challenge?.params.realm ?? ''} ${ep.challenge?.params.service ?? ''} ${scopesKey(scopes)}`;
        this.tokens.delete(tokenKeyBefore);
        ep.challenge = bearer;
        scopes = mergeScopes([...scopes, ...parseScopeParam(bearer.params.scope)]);
        continue;
      }
      if (authTry === 0 && basic !== undefined && ep.challenge?.scheme !== 'basic' && found !== undefined) {
        ep.challenge = basic;
        continue;
      }
      throw statusError(401, body, { registry: this.registry, ...(req.repository ? { repository: req.repository } : {}), what: req.what, sentCredentials: found !== undefined });
    }
  }

  where(repository?: string): string {
    return repository ? `${this.registry}/${repository}` : this.registry;
  }

  /** Throws the mapped error for an unexpected status (reading the error body). */
  async failWith(res: HttpResponse, attempts: number, what: string, repository?: string): Promise<never> {
    const body = await readText(res);
    throw statusError(res.statusCode, body, { registry: this.registry, ...(repository ? { repository } : {}), what, attempts, sentCredentials: (await this.credentials(repository)) !== undefined });
  }

  /**
   * Fetches a manifest by tag or digest. The body is read with the MAX_MANIFEST_BYTES limit
   * enforced as it arrives (a declared larger Content-Length is refused without reading),
   * and a manifest fetched by digest must hash to that digest.
   */
  async getManifest(repository: string, reference: string, options: { accept?: string; signal?: AbortSignal } = {}): Promise<ManifestBlob> {
    const what = `manifest ${reference}`;
    const { res, attempts } = await this.request({
      method: 'GET',
      path: `${repoPath(repository)}/manifests/${enc(reference)}`,
      headers: { accept: options.accept ?? MANIFEST_ACCEPT },
      scopes: [{ repository, actions: ['pull'] }],
      repository,
      what,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (res.statusCode !== 200) return this.failWith(res, attempts, what, repository);
    const tooBig = (size: number): BasaltError =>
      new BasaltError('invalid', `${what} of ${this.where(repository)} is ${size} bytes or more, over the ${MAX_MANIFEST_BYTES}-byte manifest limit`, {
        hint: 'the registry served something that is not a manifest, or a hostile one; refusing to read it',
      });
    const declared = Number(header(res, 'content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > MAX_MANIFEST_BYTES) {
      abandon(res.body);
      throw tooBig(declared);
    }
    const parts: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_MANIFEST_BYTES) {
          abandon(res.body);
          throw tooBig(size);
        }
        parts.push(chunk);
      }
    } catch (e) {
      if (e instanceof BasaltError) throw e;
      throw networkError(e, new URL(`https://${this.registry}`), `reading ${what} of ${this.where(repository)}`);
    }
    const bytes = Buffer.concat(parts);
    const contentType = header(res, 'content-type')?.split(';')[0]?.trim() ?? '';
    let digest: Digest;
    if (reference.includes(':')) {
      const { algorithm } = parseDigest(reference, what);
      const got = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
      if (got !== reference)
        throw new BasaltError('integrity', `${what} of ${this.where(repository)}: the registry served content with digest ${got}`, { hint: 'the registry or something between is corrupting data' });
      digest = reference;
    } else {
      digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    }
    return { bytes, mediaType: ownMediaType(bytes) ?? contentType, digest };
  }

  /** HEAD of a manifest: its digest, media type and size (GET when the registry sends no digest). */
  async headManifest(ref: ImageReference): Promise<ManifestHead> {
    const reference = ref.digest ?? ref.tag ?? 'latest';
    const what = `manifest ${reference}`;
    const { res, attempts } = await this.request({
      method: 'HEAD',
      path: `${repoPath(ref.repository)}/manifests/${enc(reference)}`,
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [{ repository: ref.repository, actions: ['pull'] }],
      repository: ref.repository,
      what,
    });
    await discard(res);
    if (res.statusCode !== 200) throw statusError(res.statusCode, '', { registry: this.registry, repository: ref.repository, what, attempts });
    const digest = header(res, 'docker-content-digest');
    const mediaType = header(res, 'content-type')?.split(';')[0]?.trim() ?? '';
    const size = Number(header(res, 'content-length') ?? NaN);
    if (digest !== undefined && Number.isFinite(size)) {
      parseDigest(digest, `digest of ${what}`);
      return { digest, mediaType, size };
    }
    const blob = await this.getManifest(ref.repository, reference);
    return { digest: blob.digest, mediaType: blob.mediaType, size: blob.bytes.length };
  }

  /** Deletes a manifest; a tag is resolved to its digest first (registries delete by digest). */
  async deleteManifest(ref: ImageReference): Promise<Digest> {
    const digest = ref.digest ?? (await this.headManifest(ref)).digest;
    const what = `manifest ${digest}`;
    const { res, attempts } = await this.request({
      method: 'DELETE',
      path: `${repoPath(ref.repository)}/manifests/${enc(digest)}`,
      scopes: [{ repository: ref.repository, actions: ['pull', 'delete'] }],
      repository: ref.repository,
      what,
    });
    if (res.statusCode !== 202 && res.statusCode !== 200) {
      if (res.statusCode === 405)
        throw new BasaltError('unsupported', `${this.where(ref.repository)} does not allow deleting ${what}`, { hint: 'the registry has deletion disabled (Distribution: storage.delete.enabled)' });
      return this.failWith(res, attempts, what, ref.repository);
    }
    await discard(res);
    return digest;
  }

  /** Every tag of a repository, following `Link: <…>; rel="next"` pagination. */
  async listTags(repository: string, pageSize = 1000): Promise<string[]> {
    const tags: string[] = [];
    let path: string | undefined = `${repoPath(repository)}/tags/list?n=${pageSize}`;
    for (let page = 0; path !== undefined && page < 10_000; page++) {
      const { res, attempts } = await this.request({ method: 'GET', path, scopes: [{ repository, actions: ['pull'] }], repository, what: 'tag list' });
      if (res.statusCode !== 200) return this.failWith(res, attempts, 'tag list', repository);
      const text = await readText(res, 32 * 1024 * 1024);
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch {
        throw new BasaltError('invalid', `tag list of ${this.where(repository)} is not JSON`);
      }
      const pageTags = (doc as { tags?: unknown }).tags;
      if (Array.isArray(pageTags)) for (const t of pageTags) if (typeof t === 'string') tags.push(t);
      path = nextLink(headerValues(res, 'link'));
    }
    return tags;
  }

  /**
   * Checks credentials against the registry the way `podman login` does: a token for no
   * particular scope from the token server, or /v2/ with Basic credentials.
   */
  async verifyLogin(): Promise<void> {
    const ep = await this.endpoint();
    if (ep.challenge === undefined) return; // The registry needs no authentication; nothing to verify.
    if (ep.challenge.scheme === 'bearer') {
      await this.fetchToken(ep.challenge, [], undefined, ep.dispatcher);
      return;
    }
    const { res, attempts } = await this.request({ method: 'GET', path: '/v2/', scopes: [], what: 'login check' });
    if (res.statusCode !== 200) return this.failWith(res, attempts, 'login check');
    await discard(res);
  }

  /** Verifies `creds` against `registry` (for login): throws 'auth' when they are rejected. */
  static async checkLogin(registry: string, creds: Credentials, options: RegistryOptions = {}): Promise<void> {
    await new RegistryClient(registry, options, creds).verifyLogin();
  }
}

/** Verifies credentials against a registry (used by login). */
export async function checkLogin(registry: string, creds: Credentials | string, options: RegistryOptions = {}): Promise<void> {
  await RegistryClient.checkLogin(registry, typeof creds === 'string' ? parseCredsOption(creds) : creds, options);
}

function nextLink(values: string[]): string | undefined {
  for (const v of values) {
    for (const part of v.split(',')) {
      const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
      if (m?.[1]) return m[1];
    }
  }
  return undefined;
}

function ownMediaType(bytes: Buffer): string | undefined {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
    return typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  } catch {
    return undefined;
  }
}

/** `host/repo:tag` for messages. */
export function describeReference(ref: ImageReference): string {
  return formatReference(ref);
}
