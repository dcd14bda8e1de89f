import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';

/*
 * A small HTTP/1.1 client on node:http and node:https. It replaced undici, whose ~900 KB
 * CommonJS tree cost ~65 ms of every start-up; the built-in modules are already in Node's
 * start-up snapshot. It keeps what basalt relied on: keep-alive pools per TLS setting,
 * redirects for GET/HEAD, repeated headers as arrays, idle and connect timeouts, AbortSignal.
 */

/** TLS settings of a pool: extra CAs (with the roots), a client certificate, verification. */
export interface PoolTls {
  rejectUnauthorized: boolean;
  ca?: string[];
  cert?: string;
  key?: string;
}

/** Keep-alive connections for plain http and for https with one TLS setting. */
export interface ConnectionPool {
  http: HttpAgent;
  https: HttpsAgent;
}

/** Connections per host, as undici's `connections: 16` allowed. */
const MAX_SOCKETS = 16;
/** An idle kept-alive connection is closed after this long (undici's keepAliveTimeout). */
const IDLE_KEEPALIVE_MS = 30_000;
/** undici's headersTimeout/bodyTimeout defaults: this long without a byte fails the request. */
export const DEFAULT_TIMEOUT_MS = 300_000;
/** undici's connect timeout: a host that does not answer the handshake fails fast. */
const CONNECT_TIMEOUT_MS = 10_000;

export function createPool(tls: PoolTls = { rejectUnauthorized: true }): ConnectionPool {
  const common = { keepAlive: true, maxSockets: MAX_SOCKETS, timeout: IDLE_KEEPALIVE_MS, scheduling: 'lifo' as const };
  return { http: new HttpAgent(common), https: new HttpsAgent({ ...common, ...tls }) };
}

let defaultPool: ConnectionPool | undefined;

/** The pool with Node's default TLS settings (verification on, system roots). */
export function sharedPool(): ConnectionPool {
  defaultPool ??= createPool();
  return defaultPool;
}

export interface WireRequest {
  method: string;
  headers?: Record<string, string>;
  /** A buffer is sent with its Content-Length; a stream is piped (chunked unless a Content-Length is given). */
  body?: Buffer | Readable;
  /** Redirects followed for GET and HEAD; other methods get the 3xx answer. */
  maxRedirections?: number;
  signal?: AbortSignal;
  pool?: ConnectionPool;
  /** Fail when no byte moves for this long (default 300 s); the error is a retryable ETIMEDOUT. */
  timeoutMs?: number;
  /** Bytes the response body buffers ahead of its reader. */
  highWaterMark?: number;
}

/** Header names are lower case; a header sent more than once is an array. */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

export interface WireResponse {
  statusCode: number;
  headers: ResponseHeaders;
  /** Must be read, dumped or destroyed, or its connection stays busy. */
  body: Readable;
}

const REDIRECT_STATUSES = new Set([300, 301, 302, 303, 307, 308]);

/** Sends a request and resolves when the answer's headers arrive (after any redirects). */
export async function request(url: URL, options: WireRequest): Promise<WireResponse> {
  let current = url;
  let method = options.method;
  let headers = { ...options.headers };
  let body = options.body;
  for (let redirects = 0; ; redirects++) {
    const res = await sendOne(current, method, headers, body, options);
    const location = firstValue(res.headers.location);
    const follow = REDIRECT_STATUSES.has(res.statusCode) && location !== undefined && redirects < (options.maxRedirections ?? 0) && (method === 'GET' || method === 'HEAD');
    if (!follow) return res;
    await dump(res.body);
    const next = new URL(location, current);
    // As undici: credentials stay with their origin; a 303 drops the content headers.
    headers = withoutHeaders(headers, (name) => (next.origin !== current.origin && CREDENTIAL_HEADERS.has(name)) || (res.statusCode === 303 && name.startsWith('content-')) || name === 'host');
    if (res.statusCode === 303 && method !== 'HEAD') {
      method = 'GET';
      body = undefined;
    }
    current = next;
  }
}

const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

function withoutHeaders(headers: Record<string, string>, drop: (lowerName: string) => boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (!drop(name.toLowerCase())) out[name] = value;
  return out;
}

function firstValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Reads and drops the rest of a body so its connection can be reused; a body larger than
 * `limit` is destroyed instead (closing its connection), as undici's dump() does.
 */
export async function dump(body: Readable, limit = 128 * 1024): Promise<void> {
  if (body.readableEnded || body.destroyed) return;
  // Breaking out of the loop destroys the body; that must not become an uncaught 'error'.
  body.on('error', () => undefined);
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) break;
    }
  } catch {
    // A broken body only costs its connection.
  }
}

function collectHeaders(raw: string[]): ResponseHeaders {
  const out: ResponseHeaders = Object.create(null) as ResponseHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    const prev = out[name];
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

function codedError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}

function sendOne(url: URL, method: string, headers: Record<string, string>, body: Buffer | Readable | undefined, o: WireRequest): Promise<WireResponse> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') return reject(codedError(`${url.protocol} URLs cannot be fetched over HTTP`, 'ERR_INVALID_PROTOCOL'));
    const signal = o.signal;
    if (signal?.aborted) return reject(abortReason(signal));
    const pool = o.pool ?? sharedPool();
    const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const req = (secure ? httpsRequest : httpRequest)(url, {
      method,
      headers,
      agent: secure ? pool.https : pool.http,
      timeout: timeoutMs,
      ...(o.highWaterMark !== undefined ? { highWaterMark: o.highWaterMark } : {}),
    });
    let response: IncomingMessage | undefined;
    let settled = false;
    const onAbort = (): void => fail(abortReason(signal as AbortSignal));
    const cleanup = (): void => signal?.removeEventListener('abort', onAbort);
    const stopBody = (): void => {
      // A request that failed or closed takes no more input; the source stops (as with undici).
      if (body !== undefined && !Buffer.isBuffer(body) && !body.readableEnded && !body.destroyed) {
        body.unpipe(req);
        body.destroy();
      }
    };
    /** Before the answer the promise rejects; after it, the reader of the body sees the error. */
    function fail(e: Error): void {
      stopBody();
      if (response !== undefined) {
        // An answer that arrived whole (an early error status) stays readable.
        if (!response.complete) response.destroy(e);
        return;
      }
      if (!settled) {
        settled = true;
        cleanup();
        reject(e);
      }
      req.destroy(e);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', fail);
    req.once('close', stopBody);
    req.on('timeout', () => fail(codedError(`${url.host} sent nothing for ${timeoutMs / 1000} s`, 'ETIMEDOUT')));
    req.once('socket', (socket: Socket) => {
      if (!socket.connecting) return;
      const timer = setTimeout(() => fail(codedError(`connecting to ${url.host} timed out after ${CONNECT_TIMEOUT_MS / 1000} s`, 'ETIMEDOUT')), CONNECT_TIMEOUT_MS);
      const clear = (): void => clearTimeout(timer);
      socket.once(secure ? 'secureConnect' : 'connect', clear);
      socket.once('close', clear);
    });
    req.on('response', (res: IncomingMessage) => {
      response = res;
      settled = true;
      res.once('close', cleanup);
      resolve({ statusCode: res.statusCode ?? 0, headers: collectHeaders(res.rawHeaders), body: res });
    });
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      // pipe() keeps back-pressure; a source error fails the request with that error.
      body.on('error', (e: Error) => fail(e));
      body.pipe(req);
    }
  });
}
