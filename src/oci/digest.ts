import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { BasaltError } from './errors.js';

export type DigestAlgorithm = 'sha256' | 'sha512';
/** A content digest in OCI form, `algorithm:hex`. */
export type Digest = string;

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

/** Parses and validates a digest string; throws 'invalid' naming `what` when malformed. */
export function parseDigest(digest: string, what = 'digest'): ParsedDigest {
  const m = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(digest);
  if (!m) throw new BasaltError('invalid', `${what} "${digest}" is not a digest (expected algorithm:hex)`);
  const algorithm = m[1] as string;
  const hex = m[2] as string;
  if (algorithm !== 'sha256' && algorithm !== 'sha512')
    throw new BasaltError('unsupported', `${what} "${digest}" uses algorithm ${algorithm}; basalt supports sha256 and sha512`);
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex))
    throw new BasaltError('invalid', `${what} "${digest}" has a malformed ${algorithm} hex part`);
  return { algorithm, hex };
}

export function isDigest(s: string): boolean {
  try {
    parseDigest(s);
    return true;
  } catch {
    return false;
  }
}

export function digestOf(data: Buffer | string, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** A pass-through stream that hashes and counts what flows through it. */
export class DigestingStream extends Transform {
  readonly algorithm: DigestAlgorithm;
  private readonly hash: Hash;
  private count = 0;
  private result: Digest | undefined;

  constructor(algorithm: DigestAlgorithm = 'sha256') {
    super();
    this.algorithm = algorithm;
    this.hash = createHash(algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.count += chunk.length;
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.result = `${this.algorithm}:${this.hash.digest('hex')}`;
    cb();
  }

  get size(): number {
    return this.count;
  }

  /** The digest, available once the stream has finished. */
  get digest(): Digest {
    if (this.result === undefined) throw new Error('DigestingStream: digest read before the stream ended');
    return this.result;
  }
}

/**
 * A pass-through stream that fails unless exactly `size` bytes with `digest` flow through it.
 * Oversize input fails as soon as it is seen, so a hostile source cannot fill the disk.
 * `what` names the blob in the error ("blob sha256:… of docker://…"); `onBytes` reports
 * progress, so a destination needs no second stream stage just to count.
 * (Hashing on a worker thread was measured and dropped: on two cores the worker competes
 * with the main thread and added ~70 MB of peak RSS; see bench/README.md.)
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash;
  private readonly expected: ParsedDigest;
  private count = 0;

  constructor(
    private readonly digest: Digest,
    private readonly size: number | undefined,
    private readonly what: string,
    private readonly onBytes?: (n: number) => void,
  ) {
    super({ highWaterMark: 1 << 20 });
    this.expected = parseDigest(digest, what);
    this.hash = createHash(this.expected.algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    if (this.size !== undefined && this.count > this.size) {
      cb(new BasaltError('integrity', `${this.what}: more data than the ${this.size} bytes its descriptor declares`, { hint: 'the source is corrupt or was tampered with' }));
      return;
    }
    this.hash.update(chunk);
    this.onBytes?.(chunk.length);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.size !== undefined && this.count !== this.size) {
      cb(new BasaltError('integrity', `${this.what}: got ${this.count} bytes, descriptor declares ${this.size} (truncated)`, { hint: 'the source is truncated or corrupt; retry or rebuild it' }));
      return;
    }
    const got = `${this.expected.algorithm}:${this.hash.digest('hex')}`;
    if (got !== this.digest) cb(new BasaltError('integrity', `${this.what}: digest mismatch, expected ${this.digest}, got ${got}`, { hint: 'the source is corrupt or was tampered with; nothing was written at the destination' }));
    else cb();
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.count;
  }
}
