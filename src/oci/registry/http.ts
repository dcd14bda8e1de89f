import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import { BasaltError } from '../errors.js';
import { dump, request, type ConnectionPool, type WireResponse } from './http-client.js';
import type { RetryPolicy } from './options.js';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface HttpRequest {
  url: URL;
  method: HttpMethod;
  headers: Record<string, string>;
  /**
   * A buffer can be sent again after a retryable failure; a stream (a streamed blob upload)
   * cannot, so a request with a stream body is sent once and its answer returned as it is.
   */
  body?: Buffer | Readable;
  maxRedirections?: number;
  signal?: AbortSignal;
}

export type HttpResponse = WireResponse;

/** One header value (repeated headers come as arrays). */
export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Every value of a header that may repeat (WWW-Authenticate, Link). */
export function headerValues(res: HttpResponse, name: string): string[] {
  const v = res.headers[name.toLowerCase()];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** Reads a (small) response body as text, at most `limit` bytes, discarding the rest. */
export async function readText(res: HttpResponse, limit = 64 * 1024): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (size < limit) parts.push(chunk.subarray(0, limit - size));
      size += chunk.length;
    }
  } catch {
    // The error body is only used for messages; a broken one must not hide the status.
  }
  return Buffer.concat(parts).toString('utf8');
}

/** Frees the connection of a response whose body is not needed. */
export async function discard(res: HttpResponse): Promise<void> {
  try {
    await dump(res.body);
  } catch {
    // Nothing to do: the connection is closed instead of reused.
  }
}

/**
 * Drops a response mid-way (closing its connection). A destroyed stream may report an
 * 'error' event, which must have a listener or it becomes an uncaught exception.
 */
export function abandon(body: { on(event: 'error', fn: (e: unknown) => void): unknown; destroy(): unknown }): void {
  body.on('error', () => undefined);
  body.destroy();
}

export function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function errorText(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e instanceof Error; depth++) {
    parts.push(e.message);
    e = e.cause;
  }
  return parts.join(': ');
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EAI_AGAIN',
  // A body destroyed before its end with no error of its own (its connection was cut).
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/**
 * Whether a failure is worth retrying: a connection that dropped or timed out. A refused
 * connection, an unknown host or a TLS failure will fail the same way again.
 */
export function isRetryableNetworkError(err: unknown): boolean {
  if (err instanceof BasaltError) return false;
  if (err instanceof Error && err.name === 'AbortError') return false;
  const code = errorCode(err);
  if (code !== undefined) return RETRYABLE_CODES.has(code);
  return /other side closed|socket hang up|terminated/i.test(errorText(err));
}

function looksLikePlainHttp(err: unknown): boolean {
  const code = errorCode(err) ?? '';
  return code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long|http request/i.test(errorText(err));
}

const CERT_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS_CERT_ALTNAME_INVALID/;

/** A BasaltError 'network' for a transport failure, naming host:port and what to do. */
export function networkError(err: unknown, url: URL, what: string, attempts?: number): BasaltError {
  if (err instanceof BasaltError) return err;
  const hostPort = url.port ? url.host : `${url.hostname}:${url.protocol === 'https:' ? 443 : 80}`;
  const code = errorCode(err);
  const tries = attempts !== undefined && attempts > 1 ? ` after ${attempts} attempts` : '';
  if (url.protocol === 'https:' && looksLikePlainHttp(err))
    return new BasaltError('network', `${what}: ${hostPort} does not answer https (it looks like a plain-http registry)`, {
      hint: 'pass --tls-verify=false, or mark the registry insecure = true in registries.conf',
      cause: err,
    });
  if (code !== undefined && CERT_CODES.test(code))
    return new BasaltError('network', `${what}: the TLS certificate of ${hostPort} is not trusted (${code})`, {
      hint: `put its CA certificate in /etc/containers/certs.d/${url.host}/ca.crt (or --cert-dir), or pass --tls-verify=false`,
      cause: err,
    });
  if (code === 'ECONNREFUSED')
    return new BasaltError('network', `${what}: cannot connect to ${hostPort} (connection refused)`, {
      hint: url.protocol === 'http:' ? 'check that the registry is running and the host and port are right' : 'check that the registry is running and the host and port are right; if it serves plain http, pass --tls-verify=false',
      cause: err,
    });
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return new BasaltError('network', `${what}: host ${url.hostname} not found`, { hint: 'check the registry name and DNS', cause: err });
  return new BasaltError('network', `${what}: connection to ${hostPort} failed${tries} (${errorText(err)})`, { hint: 'check the network and retry', cause: err });
}

/** Milliseconds a Retry-After header asks for (seconds or an HTTP date), if it parses. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

export async function sendOnce(pool: ConnectionPool, req: HttpRequest): Promise<HttpResponse> {
  return request(req.url, {
    pool,
    method: req.method,
    headers: req.headers,
    maxRedirections: req.maxRedirections ?? 0,
    // Blob bodies are read in large pieces; a small buffer would pause the socket often.
    highWaterMark: 1 << 20,
    ...(req.body !== undefined ? { body: req.body } : {}),
    ...(req.signal !== undefined ? { signal: req.signal } : {}),
  });
}

export interface RetryContext {
  policy: RetryPolicy;
  /** What is being done, for retry notices and errors. */
  what: string;
  log?: ((message: string) => void) | undefined;
  /** Whether a dropped connection may be retried (false when the request was not idempotent and may have taken effect). */
  retryNetworkErrors?: boolean;
}

/** The result of sendWithRetry: the response and how many attempts it took. */
export interface RetriedResponse {
  res: HttpResponse;
  attempts: number;
}

/**
 * Sends a request, retrying 429 and 5xx answers and dropped connections with exponential
 * back-off (honouring Retry-After), within the policy's attempt and time budget. A final
 * 429/5xx is returned for the caller to turn into an error naming what it asked for.
 */
export async function sendWithRetry(pool: ConnectionPool, req: HttpRequest, ctx: RetryContext): Promise<RetriedResponse> {
  const { policy } = ctx;
  const resendable = req.body === undefined || Buffer.isBuffer(req.body);
  let waited = 0;
  for (let attempt = 1; ; attempt++) {
    let res: HttpResponse;
    try {
      res = await sendOnce(pool, req);
    } catch (e) {
      if (req.signal?.aborted) throw new BasaltError('interrupted', `${ctx.what}: interrupted`, { cause: e });
      const delay = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      if (resendable && ctx.retryNetworkErrors !== false && isRetryableNetworkError(e) && attempt < policy.attempts && waited + delay <= policy.totalBudgetMs) {
        ctx.log?.(`${ctx.what}: connection failed (${errorCode(e) ?? errorText(e)}); retrying in ${delay} ms (attempt ${attempt + 1} of ${policy.attempts})`);
        waited += delay;
        await sleep(delay, undefined, req.signal ? { signal: req.signal } : undefined);
        continue;
      }
      throw networkError(e, req.url, ctx.what, attempt);
    }
    const status = res.statusCode;
    if (resendable && (status === 429 || status === 502 || status === 503 || status === 504 || status === 500)) {
      const asked = retryAfterMs(header(res, 'retry-after'));
      const backoff = policy.baseDelayMs * 2 ** (attempt - 1);
      const delay = Math.min(policy.maxDelayMs, asked ?? backoff);
      if (attempt < policy.attempts && waited + delay <= policy.totalBudgetMs) {
        await discard(res);
        ctx.log?.(`${ctx.what}: registry answered HTTP ${status}; retrying in ${delay} ms (attempt ${attempt + 1} of ${policy.attempts})`);
        waited += delay;
        await sleep(delay, undefined, req.signal ? { signal: req.signal } : undefined);
        continue;
      }
    }
    return { res, attempts: attempt };
  }
}
