import type { Readable } from 'node:stream';

/**
 * Pulls bytes from a Readable on demand: a chunk is taken from the input only when the
 * reader asks for more, so a slow consumer slows the producer (backpressure) and no more
 * than one input chunk is held at a time.
 */
export class ByteSource {
  private readonly iterator: AsyncIterator<unknown>;
  private pending: Buffer = Buffer.alloc(0);
  private done = false;
  private failure: unknown;
  /** Bytes handed out so far: the offset of the next byte in the stream. */
  position = 0;

  constructor(input: Readable) {
    this.iterator = input[Symbol.asyncIterator]();
  }

  /** Up to `max` bytes (at least 1), or null at end of input. */
  async chunk(max: number): Promise<Buffer | null> {
    while (this.pending.length === 0) {
      // An input error is remembered: later reads report it again instead of a "truncated" EOF.
      if (this.failure !== undefined) throw this.failure;
      if (this.done) return null;
      let next: IteratorResult<unknown>;
      try {
        next = await this.iterator.next();
      } catch (e) {
        this.failure = e ?? new Error('input stream failed');
        throw this.failure;
      }
      if (next.done) {
        this.done = true;
        return null;
      }
      const value = next.value;
      this.pending = Buffer.isBuffer(value) ? value : Buffer.from(value as Uint8Array);
    }
    const out = this.pending.length <= max ? this.pending : this.pending.subarray(0, max);
    this.pending = this.pending.subarray(out.length);
    this.position += out.length;
    return out;
  }

  /** Exactly `n` bytes, or fewer when the input ends first (the caller decides if that is an error). */
  async read(n: number): Promise<Buffer> {
    const first = await this.chunk(n);
    if (first === null) return Buffer.alloc(0);
    if (first.length === n) return first;
    const parts = [first];
    let have = first.length;
    while (have < n) {
      const part = await this.chunk(n - have);
      if (part === null) break;
      parts.push(part);
      have += part.length;
    }
    return Buffer.concat(parts, have);
  }

  /** Discards `n` bytes; returns how many were actually there. */
  async skip(n: number): Promise<number> {
    let skipped = 0;
    while (skipped < n) {
      const part = await this.chunk(Math.min(n - skipped, 1 << 20));
      if (part === null) break;
      skipped += part.length;
    }
    return skipped;
  }

  /** Reads and discards everything left, so upstream verifiers (digests) see the whole input. */
  async drain(): Promise<void> {
    while ((await this.chunk(1 << 20)) !== null);
  }

  /** Stops reading early; destroys the input (as breaking out of `for await` would). */
  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.iterator.return?.();
    }
  }
}
