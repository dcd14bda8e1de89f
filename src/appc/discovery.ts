import type { Readable } from 'node:stream';
import { BasaltError } from '../oci/errors.js';
import { createPool, dump, request, type ConnectionPool, type WireResponse } from '../oci/registry/http-client.js';
import { RuleError, appcOsArch, checkAcIdentifier } from './identifiers.js';

/** An image request: a name and labels (version, os, arch, ...). */
export interface AppRequest {
  name: string;
  labels: Record<string, string>;
}

/**
 * Parses `NAME[:VERSION][,LABEL=VALUE...]` as appc's discovery does: the colon may appear
 * once, right after the name, and means `version=`.
 */
export function parseAppString(s: string): AppRequest {
  const comma = s.indexOf(',');
  const colon = s.indexOf(':');
  if (colon > comma && comma > -1) throw new BasaltError('usage', `"${s}": a colon may appear only right after the image name`);
  if ((s.match(/:/g) ?? []).length > 1) throw new BasaltError('usage', `"${s}": a colon may appear at most once`);
  const parts = s.replace(':', ',version=').split(',');
  const name = parts.shift() as string;
  const labels: Record<string, string> = {};
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new BasaltError('usage', `"${s}": "${p}" is not LABEL=VALUE`);
    const key = p.slice(0, eq);
    if (key in labels) throw new BasaltError('usage', `"${s}": label ${key} is given twice`);
    try {
      checkAcIdentifier(key, 'label name', 'actool');
    } catch (e) {
      throw new BasaltError('usage', `"${s}": ${(e as RuleError).rule}`);
    }
    labels[key] = p.slice(eq + 1);
  }
  try {
    checkAcIdentifier(name, 'image name', 'actool');
  } catch (e) {
    throw new BasaltError('usage', `"${s}": ${(e as RuleError).rule}`);
  }
  return { name, labels };
}

/** Labels discovery fills in: version "latest", and this machine's os and arch (as rkt does). */
export function withDefaultLabels(app: AppRequest): AppRequest {
  const host = appcOsArch(process.platform === 'linux' ? 'linux' : process.platform, process.arch === 'x64' ? 'amd64' : process.arch === 'ia32' ? '386' : process.arch) ?? { os: 'linux', arch: 'amd64' };
  return { name: app.name, labels: { version: 'latest', os: host.os, arch: host.arch, ...app.labels } };
}

export interface AciEndpoint {
  aci: string;
  asc: string;
}

export interface DiscoveryResult {
  /** The prefix whose page gave the endpoints. */
  prefix: string;
  /** The page's URL. */
  url: string;
  endpoints: AciEndpoint[];
  publicKeys: string[];
}

export interface DiscoveryOptions {
  /** Fall back to plain HTTP and accept any TLS certificate (actool's --insecure). */
  insecure?: boolean;
  /** Only the HTTP fallback (rkt's --insecure-options=http); overrides `insecure`. */
  allowHttp?: boolean;
  /** Only accepting any certificate (rkt's --insecure-options=tls); overrides `insecure`. */
  skipTlsVerify?: boolean;
  /** Connect to this port instead of the scheme's default (testing, intranets). */
  port?: number;
  /** Give up on one request after this many milliseconds (default 30 s). */
  timeoutMs?: number;
}

interface Meta {
  name: string;
  prefix: string;
  uri: string;
}

/** `<meta name="ac-discovery..." content="PREFIX URI">` tags of an HTML page. */
export function extractMeta(html: string): Meta[] {
  const out: Meta[] = [];
  for (const tag of html.matchAll(/<meta\b([^>]*)>/gi)) {
    const attrs = new Map<string, string>();
    for (const a of (tag[1] as string).matchAll(/([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*("([^"]*)"|'([^']*)'|([^\s"'>/]+))/g))
      attrs.set((a[1] as string).toLowerCase(), decodeEntities(a[3] ?? a[4] ?? a[5] ?? ''));
    const name = attrs.get('name') ?? '';
    const content = (attrs.get('content') ?? '').trim();
    const space = content.indexOf(' ');
    if (!name.startsWith('ac-') || space < 0) continue;
    const prefix = content.slice(0, space);
    const uri = content.slice(space + 1).trim();
    if (prefix && uri) out.push({ name, prefix, uri });
  }
  return out;
}

function decodeEntities(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|#39|apos);/g, (_m, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", apos: "'" })[e] as string);
}

/** Fills `{name}` and `{LABEL}` placeholders; undefined when one is left unfilled. */
export function renderTemplate(template: string, values: Record<string, string>): string | undefined {
  // One pass, so a value that itself contains "{x}" is not filled again.
  const out = template.replace(/\{([^{}]*)\}/g, (whole, key: string) => (Object.hasOwn(values, key) ? (values[key] as string) : whole));
  return /\{.*?\}/.test(out) ? undefined : out;
}

let insecurePool: ConnectionPool | undefined;

/** A GET that follows redirects (as fetch did, up to 20), accepting any certificate when insecure. */
function get(url: URL, insecure: boolean | undefined, timeoutMs: number): Promise<WireResponse> {
  if (insecure) insecurePool ??= createPool({ rejectUnauthorized: false });
  return request(url, { method: 'GET', maxRedirections: 20, signal: AbortSignal.timeout(timeoutMs), ...(insecure ? { pool: insecurePool } : {}) });
}

/** A whole body; past `limit` bytes it stops reading and returns undefined. */
async function readAll(body: Readable, limit = Infinity): Promise<Buffer | undefined> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      await dump(body);
      return undefined;
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts, size);
}

/** GET with https first and, only when insecure, http after; returns the body and the URL. */
async function getPage(prefix: string, options: DiscoveryOptions): Promise<{ url: string; body: string }> {
  const attempt = async (scheme: string): Promise<{ url: string; body: string }> => {
    const url = new URL(`${scheme}://${prefix}`);
    if (options.port) url.port = String(options.port);
    url.search = 'ac-discovery=1';
    const res = await get(url, options.skipTlsVerify ?? options.insecure, options.timeoutMs ?? 30_000);
    if (res.statusCode !== 200) {
      await dump(res.body);
      throw new Error(`${url.href} answered ${res.statusCode}, expected 200 OK`);
    }
    // TextDecoder drops a byte-order mark, as fetch's text() did.
    return { url: url.href, body: new TextDecoder().decode(await readAll(res.body)) };
  };
  try {
    return await attempt('https');
  } catch (e) {
    if (!(options.allowHttp ?? options.insecure)) throw e;
    return attempt('http');
  }
}

/**
 * appc meta discovery: fetch `https://PREFIX?ac-discovery=1` for the name and then each
 * shorter prefix (dropping path components from the right), and render the first page's
 * `ac-discovery` templates whose prefix the name starts with. A template with a placeholder
 * no label fills is skipped; when no page yields an endpoint, the error lists every attempt.
 */
export async function discover(request: AppRequest, options: DiscoveryOptions = {}): Promise<DiscoveryResult> {
  const app = withDefaultLabels(request);
  const values = { name: app.name, ...app.labels };
  const attempts: string[] = [];
  for (const prefix of prefixWalk(app.name)) {
    let page: { url: string; body: string };
    try {
      page = await getPage(prefix, options);
    } catch (e) {
      attempts.push(`${prefix}: ${describe(e)}`);
      continue;
    }
    const endpoints: AciEndpoint[] = [];
    const publicKeys: string[] = [];
    let templates = 0;
    for (const m of extractMeta(page.body)) {
      if (!app.name.startsWith(m.prefix)) continue;
      if (m.name === 'ac-discovery-pubkeys') publicKeys.push(m.uri);
      if (m.name !== 'ac-discovery') continue;
      templates++;
      const aci = renderTemplate(m.uri, { ...values, ext: 'aci' });
      const asc = renderTemplate(m.uri, { ...values, ext: 'aci.asc' });
      if (aci && asc) endpoints.push({ aci, asc });
    }
    if (endpoints.length > 0) return { prefix, url: page.url, endpoints, publicKeys };
    attempts.push(`${page.url}: ${templates === 0 ? 'no ac-discovery meta tag for this name' : `${templates} ac-discovery template(s), none filled by the labels ${JSON.stringify(app.labels)}`}`);
  }
  throw new BasaltError('not-found', `discovery of ${app.name} found no ACI endpoint: ${attempts.join('; ')}`, {
    hint: options.insecure ? 'check the name, its labels and the discovery pages' : 'check the name and its labels; pass --insecure to allow plain HTTP',
  });
}

export function prefixWalk(name: string): string[] {
  const parts = name.split('/');
  return parts.map((_p, i) => parts.slice(0, parts.length - i).join('/'));
}

/** Downloads a URL into memory (ACIs and signatures), honouring the insecure setting. */
export async function download(url: string, options: { insecure?: boolean; allowHttp?: boolean; timeoutMs?: number; limit?: number }): Promise<Buffer> {
  const parsed = new URL(url);
  if (parsed.protocol === 'http:' && !options.allowHttp)
    throw new BasaltError('denied', `${url}: refusing to download over plain HTTP`, { hint: 'pass --insecure-options=http to allow it' });
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new BasaltError('usage', `${url}: only http and https URLs can be fetched`);
  let res: WireResponse;
  let data: Buffer | undefined;
  try {
    res = await get(parsed, options.insecure, options.timeoutMs ?? 300_000);
    if (res.statusCode === 404) {
      await dump(res.body);
      throw new BasaltError('not-found', `${url}: 404 not found`);
    }
    if (res.statusCode !== 200) {
      await dump(res.body);
      throw new BasaltError('network', `${url}: the server answered ${res.statusCode}`);
    }
    data = await readAll(res.body, options.limit);
  } catch (e) {
    if (e instanceof BasaltError) throw e;
    throw new BasaltError('network', `${url}: ${describe(e)}`, { cause: e });
  }
  if (data === undefined) throw new BasaltError('invalid', `${url}: larger than ${options.limit} bytes`);
  return data;
}

/**
 * A transport failure in one line, worded as when undici's fetch reported it (`fetch
 * failed (CODE: reason)`); a timeout or other error is its own message.
 */
function describe(e: unknown): string {
  const err = e as Error & { code?: unknown };
  if (typeof err.code !== 'string') return err.message;
  const message = err.message.split('\n')[0]?.replace(/^.*:(error:)?/, '').trim();
  return `fetch failed (${[err.code, message].filter(Boolean).join(': ')})`;
}
