/**
 * Registry authentication: the WWW-Authenticate challenge (RFC 7235 syntax), Basic, and
 * Distribution's bearer token flow (GET the realm with service and scope, Basic credentials
 * when we have them, or the OAuth2 refresh-token POST for an identity token).
 */
import type { Credentials } from './credentials.js';

export interface Challenge {
  /** Lower-cased scheme: `bearer`, `basic`. */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses WWW-Authenticate values. One header may hold several challenges separated by
 * commas, so a new challenge starts at a token that is not followed by `=`.
 */
export function parseChallenges(values: readonly string[]): Challenge[] {
  const out: Challenge[] = [];
  const isTokenChar = (c: string): boolean => /[A-Za-z0-9!#$%&'*+.^_`|~\/-]/.test(c);
  for (const value of values) {
    let i = 0;
    let current: Challenge | undefined;
    const skip = (chars: RegExp): void => {
      while (i < value.length && chars.test(value[i] as string)) i++;
    };
    const readToken = (): string => {
      const start = i;
      while (i < value.length && isTokenChar(value[i] as string)) i++;
      return value.slice(start, i);
    };
    while (i < value.length) {
      skip(/[\s,]/);
      const token = readToken();
      if (token === '') {
        i++; // an unexpected character: skip it rather than loop
        continue;
      }
      skip(/\s/);
      if (value[i] === '=' && current !== undefined) {
        i++;
        skip(/\s/);
        let v = '';
        if (value[i] === '"') {
          i++;
          while (i < value.length && value[i] !== '"') {
            if (value[i] === '\\' && i + 1 < value.length) i++;
            v += value[i];
            i++;
          }
          i++;
        } else {
          const start = i;
          while (i < value.length && value[i] !== ',' && !/\s/.test(value[i] as string)) i++;
          v = value.slice(start, i);
        }
        current.params[token.toLowerCase()] = v;
      } else {
        current = { scheme: token.toLowerCase(), params: {} };
        out.push(current);
      }
    }
  }
  return out;
}

/** An access scope, `repository:NAME:ACTIONS`. */
export interface Scope {
  repository: string;
  actions: string[];
}

export function scopeString(s: Scope): string {
  return `repository:${s.repository}:${s.actions.join(',')}`;
}

/** Parses the `scope` parameter of a challenge (space-separated `repository:name:actions`). */
export function parseScopeParam(param: string | undefined): Scope[] {
  if (!param) return [];
  const out: Scope[] = [];
  for (const item of param.split(' ')) {
    const m = /^repository(?:\([^)]*\))?:(.+):([^:]*)$/.exec(item);
    if (m?.[1] && m[2] !== undefined) out.push({ repository: m[1], actions: m[2].split(',').filter((a) => a !== '') });
  }
  return out;
}

/** Merges scopes on the same repository, keeping action order stable. */
export function mergeScopes(scopes: readonly Scope[]): Scope[] {
  const byRepo = new Map<string, string[]>();
  for (const s of scopes) {
    const actions = byRepo.get(s.repository) ?? [];
    for (const a of s.actions) if (!actions.includes(a)) actions.push(a);
    byRepo.set(s.repository, actions);
  }
  return [...byRepo].map(([repository, actions]) => ({ repository, actions: ['pull', 'push', 'delete', '*'].filter((a) => actions.includes(a)).concat(actions.filter((a) => !['pull', 'push', 'delete', '*'].includes(a))) }));
}

/** Cache key for a set of scopes. */
export function scopesKey(scopes: readonly Scope[]): string {
  return mergeScopes(scopes).map(scopeString).sort().join(' ');
}

export function basicAuthorization(creds: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64')}`;
}

/** A token request: the URL and how to send it. */
export interface TokenRequest {
  url: URL;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: Buffer;
}

/**
 * Builds the token request for a bearer challenge. With an identity token it is the OAuth2
 * refresh-token POST; otherwise a GET with Basic credentials (or none, for anonymous pulls).
 */
export function tokenRequest(challenge: Challenge, scopes: readonly Scope[], creds: Credentials | undefined): TokenRequest {
  const realm = challenge.params.realm;
  if (!realm) throw new Error('bearer challenge without realm');
  const url = new URL(realm);
  const service = challenge.params.service;
  const scopeStrings = mergeScopes(scopes).map(scopeString);
  if (creds !== undefined && 'identityToken' in creds) {
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'basalt' });
    if (service) form.set('service', service);
    if (scopeStrings.length > 0) form.set('scope', scopeStrings.join(' '));
    return { url, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString(), 'utf8') };
  }
  if (service) url.searchParams.set('service', service);
  for (const s of scopeStrings) url.searchParams.append('scope', s);
  const headers: Record<string, string> = {};
  if (creds !== undefined) {
    url.searchParams.set('account', creds.username);
    headers.authorization = basicAuthorization(creds);
  }
  return { url, method: 'GET', headers };
}

export interface Token {
  token: string;
  /** Epoch ms after which it is not used (refreshed early to avoid a 401 round trip). */
  expiresAt: number;
}

/** Reads a token server's answer; `token` or `access_token`, with expires_in (default 60 s). */
export function parseTokenResponse(body: string, now = Date.now()): Token | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const o = doc as Record<string, unknown>;
  const token = typeof o.token === 'string' && o.token !== '' ? o.token : typeof o.access_token === 'string' && o.access_token !== '' ? o.access_token : undefined;
  if (token === undefined) return undefined;
  const expiresIn = typeof o.expires_in === 'number' && o.expires_in > 0 ? o.expires_in : 60;
  const issuedAt = typeof o.issued_at === 'string' && !Number.isNaN(Date.parse(o.issued_at)) ? Math.min(Date.parse(o.issued_at), now) : now;
  // Refresh 10 s before expiry (or at half-life for very short tokens).
  const margin = Math.min(10, expiresIn / 2) * 1000;
  return { token, expiresAt: issuedAt + expiresIn * 1000 - margin };
}
