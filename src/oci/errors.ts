/**
 * Typed errors. Every error names the input at fault and, where there is one, what to do.
 * The CLI maps `kind` to a documented exit code; the library never exits.
 */
export type ErrorKind =
  | 'usage' // bad arguments or options
  | 'not-found' // image, tag, blob, file that does not exist
  | 'auth' // credentials missing or rejected (401)
  | 'denied' // authenticated but not allowed (403), or blocked by configuration
  | 'integrity' // digest or size mismatch, truncated data
  | 'invalid' // input that does not parse or breaks a format's rules
  | 'unsupported' // valid input basalt does not handle (media type, platform)
  | 'unsafe' // tar entries escaping their target, and similar
  | 'network' // connection failures, 5xx, 429 after retries
  | 'policy' // refused by signature policy
  | 'io' // local filesystem failures (full disk, permissions)
  | 'tool' // an external program basalt needs is missing or failed
  | 'interrupted';

export const EXIT_CODES: Record<ErrorKind, number> = {
  usage: 2,
  'not-found': 3,
  auth: 4,
  denied: 4,
  integrity: 5,
  invalid: 5,
  unsupported: 6,
  unsafe: 5,
  network: 7,
  policy: 8,
  io: 9,
  tool: 10,
  interrupted: 130,
};

export class BasaltError extends Error {
  readonly kind: ErrorKind;
  /** What the user can do about it, one sentence. */
  readonly hint: string | undefined;

  constructor(kind: ErrorKind, message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BasaltError';
    this.kind = kind;
    this.hint = options?.hint;
  }
}

export function isBasaltError(e: unknown, kind?: ErrorKind): e is BasaltError {
  return e instanceof BasaltError && (kind === undefined || e.kind === kind);
}

/** Wraps a Node system error (ENOSPC, EACCES, ...) into a BasaltError naming the path. */
export function ioError(what: string, err: unknown): BasaltError {
  if (err instanceof BasaltError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const msg = err instanceof Error ? err.message : String(err);
  if (code === 'ENOENT') return new BasaltError('not-found', `${what}: no such file or directory`, { cause: err });
  if (code === 'ENOSPC')
    return new BasaltError('io', `${what}: no space left on device`, { hint: 'free some space and retry; nothing was left half-written', cause: err });
  if (code === 'EACCES' || code === 'EPERM')
    return new BasaltError('io', `${what}: permission denied`, { hint: 'check the path\'s permissions or run as root', cause: err });
  return new BasaltError('io', `${what}: ${msg}`, { cause: err });
}
