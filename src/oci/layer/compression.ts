import { PassThrough, Readable, pipeline, type Duplex } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { CompressStream, DecompressStream } from 'zstd-napi';
import type { Compression } from '../media-types.js';

export type { Compression } from '../media-types.js';

/** gzip level 6 is Go's and gzip(1)'s default: a good speed/size balance for layers. */
export const DEFAULT_GZIP_LEVEL = 6;
/** zstd level 3 is zstd's default and what containers/image uses: fast, better than gzip -6. */
export const DEFAULT_ZSTD_LEVEL = 3;

/** The compression of a stream from its first bytes (4 are enough). */
export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd && head[0] === 0x28) return 'zstd';
  // A zstd skippable frame (magic 0x184D2A50..5F) may open a zstd stream.
  if (head.length >= 4 && ((head[0] as number) & 0xf0) === 0x50 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18) return 'zstd';
  return 'none';
}

/** A transform that decompresses `kind` (a pass-through for 'none'). */
export function decompressStream(kind: Compression): Duplex {
  switch (kind) {
    case 'gzip':
      return createGunzip(); // also reads multi-member gzip (as pigz and pgzip write)
    case 'zstd':
      return new DecompressStream();
    case 'none':
      return new PassThrough();
  }
}

/** A transform that compresses with `kind` at `level` (defaults favour speed). */
export function compressStream(kind: Compression, level?: number): Duplex {
  switch (kind) {
    case 'gzip':
      return createGzip({ level: level ?? DEFAULT_GZIP_LEVEL });
    case 'zstd':
      return new CompressStream({ compressionLevel: level ?? DEFAULT_ZSTD_LEVEL });
    case 'none':
      return new PassThrough();
  }
}

/**
 * The decompressed content of `input`, whatever its compression (sniffed from the magic
 * bytes). Errors of `input` and of the decompressor surface on the returned stream.
 */
export async function autoDecompress(input: Readable): Promise<Readable> {
  const { head, stream } = await peek(input, 4);
  const kind = detectCompression(head);
  if (kind === 'none') return stream;
  const decompressor = decompressStream(kind);
  // pipeline destroys every stream with the first error, so readers of the result see it.
  pipeline(stream, decompressor, () => undefined);
  return decompressor as unknown as Readable;
}

/**
 * Reads at least `n` bytes (fewer at end of input) and puts them back; `stream` yields the
 * whole input again (a fresh stream when the input already ended, as unshift then fails).
 */
async function peek(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const parts: Buffer[] = [];
  let have = 0;
  while (have < n) {
    const chunk: unknown = input.read();
    if (chunk === null) {
      if (input.readableEnded || input.destroyed) break;
      const more = await new Promise<boolean>((resolve, reject) => {
        const cleanup = (): void => {
          input.off('readable', onReadable);
          input.off('end', onEnd);
          input.off('error', onError);
        };
        const onReadable = (): void => (cleanup(), resolve(true));
        const onEnd = (): void => (cleanup(), resolve(false));
        const onError = (err: Error): void => (cleanup(), reject(err));
        input.once('readable', onReadable);
        input.once('end', onEnd);
        input.once('error', onError);
      });
      if (!more) break;
      continue;
    }
    const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    parts.push(data);
    have += data.length;
  }
  const head = Buffer.concat(parts, have);
  if (input.readableEnded) return { head, stream: Readable.from(have > 0 ? [head] : []) };
  if (have > 0) input.unshift(head);
  return { head, stream: input };
}
