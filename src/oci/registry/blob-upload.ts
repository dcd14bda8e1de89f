import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { BasaltError } from '../errors.js';
import { parseDigest, type Digest, type DigestAlgorithm } from '../digest.js';
import type { Descriptor } from '../manifest.js';
import type { BlobInfo, ProgressSink } from '../transport.js';
import type { RegistryClient } from './client.js';
import { discard, header } from './http.js';
import { repoPathOf } from './paths.js';

export interface UploadSettings {
  /**
   * PATCH size for chunked uploads; undefined streams each blob in one PATCH, as
   * containers/image does (fewer round trips and bounded memory, but a broken connection
   * fails the blob instead of resuming it; a rerun skips the blobs already stored).
   */
  chunkSize: number | undefined;
  /** Blobs of known size up to this are sent in one PUT after being hashed in memory. */
  monolithicMaxBytes: number;
  progress?: ProgressSink;
  signal?: AbortSignal;
  /** Upload sessions in progress (absolute URLs), so abort() can cancel them. */
  openUploads: Set<string>;
}

export const DEFAULT_MONOLITHIC_MAX = 8 * 1024 * 1024;

/** Reads a stream in pieces of at most `max` bytes without copying more than once. */
class ChunkReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private leftover: Buffer | undefined;
  private ended = false;

  constructor(data: Readable) {
    this.iterator = (data as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  /** Up to `max` bytes; an empty buffer at the end of the stream. */
  async read(max: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let size = 0;
    while (size < max) {
      let chunk: Buffer;
      if (this.leftover !== undefined) {
        chunk = this.leftover;
        this.leftover = undefined;
      } else {
        if (this.ended) break;
        const next = await this.iterator.next();
        if (next.done) {
          this.ended = true;
          break;
        }
        chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      }
      const room = max - size;
      if (chunk.length > room) {
        this.leftover = chunk.subarray(room);
        chunk = chunk.subarray(0, room);
      }
      parts.push(chunk);
      size += chunk.length;
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size);
  }
}

/** Tracks the bytes and digest of what is uploaded and checks them against the BlobInfo. */
class Tally {
  private readonly hash;
  readonly algorithm: DigestAlgorithm;
  size = 0;

  constructor(
    private readonly info: BlobInfo,
    private readonly what: () => string,
  ) {
    this.algorithm = info.digest !== undefined ? parseDigest(info.digest, 'blob digest').algorithm : 'sha256';
    this.hash = createHash(this.algorithm);
  }

  add(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.info.size !== undefined && this.size > this.info.size)
      throw new BasaltError('integrity', `${this.what()}: more data than the ${this.info.size} bytes declared`, { hint: 'the source is corrupt or was tampered with; nothing was stored' });
    this.hash.update(chunk);
  }

  /** The digest of everything added; throws 'integrity' when it or the size is not what was declared. */
  finish(): Digest {
    const digest = `${this.algorithm}:${this.hash.digest('hex')}`;
    if (this.info.size !== undefined && this.size !== this.info.size)
      throw new BasaltError('integrity', `${this.what()}: got ${this.size} bytes, ${this.info.size} declared (truncated)`, { hint: 'the source is truncated or corrupt; nothing was stored' });
    if (this.info.digest !== undefined && digest !== this.info.digest)
      throw new BasaltError('integrity', `${this.what()}: digest mismatch, expected ${this.info.digest}, got ${digest}`, { hint: 'the source is corrupt or was tampered with; nothing was stored' });
    return digest;
  }
}

function pushScopes(repository: string): { repository: string; actions: string[] }[] {
  return [{ repository, actions: ['pull', 'push'] }];
}

/** POST /blobs/uploads/: opens an upload session and returns its URL. */
export async function startUpload(client: RegistryClient, repository: string, what: string, signal?: AbortSignal, query?: Record<string, string>): Promise<{ status: number; location: string | undefined }> {
  const { res, attempts, url } = await client.request({
    method: 'POST',
    path: `${repoPathOf(repository)}/blobs/uploads/`,
    ...(query ? { query } : {}),
    headers: { 'content-length': '0' },
    scopes: query?.from ? [...pushScopes(repository), { repository: query.from, actions: ['pull'] }] : pushScopes(repository),
    repository,
    what,
    ...(signal ? { signal } : {}),
  });
  if (res.statusCode !== 202 && res.statusCode !== 201) return client.failWith(res, attempts, what, repository);
  await discard(res);
  const loc = header(res, 'location');
  if (res.statusCode === 202 && loc === undefined) throw new BasaltError('invalid', `${client.where(repository)} opened an upload for ${what} without a Location`, { hint: 'the registry is not a conforming OCI registry' });
  return { status: res.statusCode, location: loc === undefined ? undefined : new URL(loc, url).toString() };
}

/** DELETE of an upload session; failures are ignored (the registry expires sessions anyway). */
export async function cancelUpload(client: RegistryClient, repository: string, location: string): Promise<void> {
  try {
    const { res } = await client.request({ method: 'DELETE', path: location, scopes: pushScopes(repository), repository, what: 'cancelling an upload' });
    await discard(res);
  } catch {
    // Best effort: an abandoned session holds no visible data.
  }
}

async function completeUpload(client: RegistryClient, repository: string, location: string, digest: Digest, body: Buffer | undefined, signal?: AbortSignal): Promise<void> {
  const what = `blob ${digest}`;
  const { res, attempts } = await client.request({
    method: 'PUT',
    path: location,
    query: { digest },
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(body?.length ?? 0) },
    ...(body !== undefined ? { body } : {}),
    scopes: pushScopes(repository),
    repository,
    what,
    ...(signal ? { signal } : {}),
  });
  if (res.statusCode !== 201 && res.statusCode !== 204) return client.failWith(res, attempts, what, repository);
  await discard(res);
  const stored = header(res, 'docker-content-digest');
  if (stored !== undefined && stored !== digest)
    throw new BasaltError('integrity', `${what}: ${client.where(repository)} stored it as ${stored}`, { hint: 'the registry or something between changed the data' });
}

async function sendChunk(client: RegistryClient, repository: string, location: string, chunk: Buffer, start: number, what: string, signal?: AbortSignal): Promise<string> {
  const { res, attempts, url } = await client.request({
    method: 'PATCH',
    path: location,
    headers: {
      'content-type': 'application/octet-stream',
      'content-length': String(chunk.length),
      'content-range': `${start}-${start + chunk.length - 1}`,
    },
    body: chunk,
    scopes: pushScopes(repository),
    repository,
    what,
    // A broken PATCH may have been partly stored; it is resumed from the registry's offset instead.
    retryNetworkErrors: false,
    ...(signal ? { signal } : {}),
  });
  if (res.statusCode !== 202 && res.statusCode !== 204) return client.failWith(res, attempts, what, repository);
  await discard(res);
  const next = header(res, 'location');
  return next === undefined ? location : new URL(next, url).toString();
}

/** GET of an upload session: how many bytes the registry holds, and the session's current URL. */
async function uploadStatus(client: RegistryClient, repository: string, location: string, what: string): Promise<{ stored: number; location: string }> {
  const { res, attempts, url } = await client.request({ method: 'GET', path: location, scopes: pushScopes(repository), repository, what: `status of ${what}` });
  if (res.statusCode !== 204 && res.statusCode !== 200) return client.failWith(res, attempts, `status of ${what}`, repository);
  await discard(res);
  const m = /^(?:bytes=)?0-(\d+)$/.exec(header(res, 'range') ?? '');
  const next = header(res, 'location');
  // Distribution answers "0-0" both for an empty session and for one byte; an empty session is the likely one.
  const last = m?.[1] !== undefined ? Number(m[1]) : -1;
  return { stored: last <= 0 ? 0 : last + 1, location: next === undefined ? location : new URL(next, url).toString() };
}

/**
 * PATCHes one chunk. When the connection breaks, the session's status says how much the
 * registry kept, and the rest of the chunk is sent again from there (a few times).
 */
async function patchChunk(client: RegistryClient, repository: string, location: string, chunk: Buffer, start: number, what: string, signal?: AbortSignal): Promise<string> {
  let offset = start;
  let current = location;
  for (let attempt = 1; ; attempt++) {
    try {
      return await sendChunk(client, repository, current, chunk.subarray(offset - start), offset, what, signal);
    } catch (e) {
      if (!(e instanceof BasaltError && e.kind === 'network') || attempt >= client.policy.attempts || signal?.aborted) throw e;
      const status = await uploadStatus(client, repository, current, what).catch(() => undefined);
      if (status === undefined || status.stored < start || status.stored > start + chunk.length) throw e;
      client.log?.(`${what}: upload broke (${e.message}); the registry holds ${status.stored} bytes, resending from there (attempt ${attempt + 1} of ${client.policy.attempts})`);
      offset = status.stored;
      current = status.location;
      if (offset === start + chunk.length) return current;
    }
  }
}

/**
 * Uploads a blob, verifying or computing its digest while it streams. Small blobs of known
 * size are hashed in memory and sent in one PUT (a bad digest is caught before anything is
 * sent); others go in PATCH chunks with Content-Range, the next chunk being read while the
 * previous one is sent, then a PUT ?digest=. On a digest or size mismatch the session is
 * cancelled with DELETE, so nothing becomes visible.
 */
export async function uploadBlob(client: RegistryClient, repository: string, data: Readable, info: BlobInfo, settings: UploadSettings): Promise<Descriptor> {
  const reader = new ChunkReader(data);
  let described = info.digest ?? '(digest computed during upload)';
  const what = (): string => `blob ${described} for ${client.where(repository)}`;
  const tally = new Tally(info, what);
  const { signal } = settings;
  try {
    if (info.size !== undefined && info.size <= settings.monolithicMaxBytes) {
      const body = await reader.read(info.size + 1);
      tally.add(body);
      const digest = tally.finish();
      described = digest;
      const started = await startUpload(client, repository, `blob ${digest}`, signal);
      if (started.location === undefined) throw new BasaltError('invalid', `${what()}: the registry did not open an upload`);
      settings.openUploads.add(started.location);
      await completeUpload(client, repository, started.location, digest, body, signal);
      settings.openUploads.delete(started.location);
      settings.progress?.(body.length);
      return descriptor(info, digest, body.length);
    }
    const started = await startUpload(client, repository, `blob ${described}`, signal);
    if (started.location === undefined) throw new BasaltError('invalid', `${what()}: the registry did not open an upload`);
    if (settings.chunkSize === undefined) return await streamUpload(client, repository, started.location, data, info, tally, settings, () => described, (d) => (described = d));
    const chunkSize = settings.chunkSize;
    let location = started.location;
    settings.openUploads.add(location);
    try {
      let next = reader.read(chunkSize);
      next.catch(() => undefined); // Read-ahead may be abandoned on failure; its error is seen when awaited.
      for (;;) {
        const chunk = await next;
        if (chunk.length === 0) break;
        const start = tally.size;
        tally.add(chunk);
        next = reader.read(chunkSize);
        next.catch(() => undefined);
        const previous = location;
        location = await patchChunk(client, repository, location, chunk, start, `blob ${described} chunk at ${start}`, signal);
        settings.openUploads.delete(previous);
        settings.openUploads.add(location);
        settings.progress?.(chunk.length);
      }
      const digest = tally.finish();
      described = digest;
      await completeUpload(client, repository, location, digest, undefined, signal);
      settings.openUploads.delete(location);
      return descriptor(info, digest, tally.size);
    } catch (e) {
      settings.openUploads.delete(location);
      await cancelUpload(client, repository, location);
      throw e;
    }
  } catch (e) {
    data.destroy();
    throw e;
  }
}

/**
 * Sends the whole blob as one streamed PATCH (chunked transfer encoding), hashing it on the
 * way, then PUT ?digest=. The registry verifies the digest too; on any mismatch the session
 * is cancelled so nothing becomes visible.
 */
async function streamUpload(
  client: RegistryClient,
  repository: string,
  start: string,
  data: Readable,
  info: BlobInfo,
  tally: Tally,
  settings: UploadSettings,
  described: () => string,
  setDescribed: (digest: Digest) => void,
): Promise<Descriptor> {
  const what = `blob ${described()}`;
  settings.openUploads.add(start);
  let location = start;
  try {
    const counted = new Transform({
      highWaterMark: 1 << 20,
      transform(chunk: Buffer, _enc, cb) {
        try {
          tally.add(chunk);
        } catch (e) {
          cb(e as Error);
          return;
        }
        settings.progress?.(chunk.length);
        cb(null, chunk);
      },
    });
    data.on('error', (e) => counted.destroy(e));
    data.pipe(counted);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (info.size !== undefined) headers['content-length'] = String(info.size);
    const { res, attempts, url } = await client.request({
      method: 'PATCH',
      path: start,
      headers,
      body: counted,
      scopes: pushScopes(repository),
      repository,
      what,
      ...(settings.signal ? { signal: settings.signal } : {}),
    });
    if (res.statusCode !== 202 && res.statusCode !== 204) return await client.failWith(res, attempts, what, repository);
    await discard(res);
    const next = header(res, 'location');
    location = next === undefined ? start : new URL(next, url).toString();
    settings.openUploads.delete(start);
    settings.openUploads.add(location);
    const digest = tally.finish();
    setDescribed(digest);
    await completeUpload(client, repository, location, digest, undefined, settings.signal);
    settings.openUploads.delete(location);
    return descriptor(info, digest, tally.size);
  } catch (e) {
    settings.openUploads.delete(location);
    await cancelUpload(client, repository, location);
    // A source error (digest mismatch, truncation) surfaces as a failed request body: report it as itself.
    const cause = (e as { cause?: unknown }).cause;
    if (cause instanceof BasaltError && cause.kind === 'integrity') throw cause;
    throw e;
  }
}

function descriptor(info: BlobInfo, digest: Digest, size: number): Descriptor {
  const d: Descriptor = { mediaType: info.mediaType, digest, size };
  if (info.annotations !== undefined) d.annotations = info.annotations;
  return d;
}
