import type { TransportOptions } from '../transport.js';

/** How failed requests (429, 5xx, dropped connections) are retried. */
export interface RetryPolicy {
  /** Total tries including the first. */
  attempts: number;
  /** First back-off delay; doubles on each retry. */
  baseDelayMs: number;
  /** Cap on a single wait, including a server's Retry-After. */
  maxDelayMs: number;
  /** Cap on the sum of all waits for one request, so a sick registry fails in bounded time. */
  totalBudgetMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 500, maxDelayMs: 8_000, totalBudgetMs: 25_000 };

/**
 * Options of the registry client. A superset of TransportOptions: the extra fields are for
 * tests and tuning, and the transport accepts them through the same options object.
 */
export interface RegistryOptions extends TransportOptions {
  retry?: Partial<RetryPolicy>;
  /** Blobs of known size up to this many bytes are uploaded in one PUT (default 8 MiB). */
  monolithicMaxBytes?: number;
  /** registries.conf drop-in directory override (default: beside the main file). */
  registriesConfDir?: string;
  /** Environment used for credential and config lookup (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Home directory for credential lookup (default os.homedir()). */
  homeDir?: string;
  /** Set from registries.conf: the registry allows plain http and unverified TLS. */
  insecure?: boolean;
}

export function retryPolicy(options: RegistryOptions): RetryPolicy {
  return { ...DEFAULT_RETRY, ...options.retry };
}
