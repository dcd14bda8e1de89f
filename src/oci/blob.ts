import type { Readable } from 'node:stream';
import { BasaltError } from './errors.js';
import { VerifyingStream } from './digest.js';
import type { Descriptor } from './manifest.js';
import type { ImageSource } from './transport.js';

/** Blobs read into memory (configs, signatures) are refused above this size. */
export const MAX_SMALL_BLOB_BYTES = 16 * 1024 * 1024;

/** A blob from `source` as a stream that fails unless its digest and size match `desc`. */
export async function openVerifiedBlob(source: ImageSource, desc: Descriptor, signal?: AbortSignal): Promise<Readable> {
  const what = `blob ${desc.digest} of ${source.name}`;
  const raw = await source.getBlob(desc, signal ? { signal } : {});
  const verifier = new VerifyingStream(desc.digest, desc.size, what);
  raw.on('error', (e) => verifier.destroy(e));
  return raw.pipe(verifier);
}

/** A small blob (config, signature payload), verified, in memory. */
export async function readVerifiedBlob(source: ImageSource, desc: Descriptor, limit = MAX_SMALL_BLOB_BYTES): Promise<Buffer> {
  if (desc.size > limit)
    throw new BasaltError('invalid', `blob ${desc.digest} of ${source.name} is ${desc.size} bytes, over the ${limit}-byte limit for configuration blobs`);
  if (desc.data !== undefined) {
    // Descriptors may embed small blobs (OCI `data`); still verify them.
    const bytes = Buffer.from(desc.data, 'base64');
    const v = new VerifyingStream(desc.digest, desc.size, `embedded data of ${desc.digest}`);
    await new Promise<void>((resolve, reject) => {
      v.on('error', reject).on('finish', resolve);
      v.resume();
      v.end(bytes);
    });
    return bytes;
  }
  const stream = await openVerifiedBlob(source, desc);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
