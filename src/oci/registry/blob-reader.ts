import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { BasaltError } from '../errors.js';
import type { Descriptor } from '../manifest.js';
import { enc, repoPathOf } from './paths.js';
import type { RegistryClient } from './client.js';
import { abandon, errorCode, header, isRetryableNetworkError, networkError, type HttpResponse } from './http.js';

interface OpenedBody {
  body: AsyncIterable<Buffer> & { destroy(): unknown; on(event: 'error', fn: (e: unknown) => void): unknown };
  /** Bytes at the start of the body to drop (a server that ignored Range sent from 0). */
  skip: number;
}

/** GETs a blob from `offset`, following redirects to storage backends. */
async function openAt(client: RegistryClient, repository: string, desc: Descriptor, offset: number, signal: AbortSignal | undefined): Promise<OpenedBody> {
  const what = `blob ${desc.digest}`;
  const { res, attempts } = await client.request({
    method: 'GET',
    path: `${repoPathOf(repository)}/blobs/${enc(desc.digest)}`,
    headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
    scopes: [{ repository, actions: ['pull'] }],
    repository,
    what,
    maxRedirections: 5,
    ...(signal ? { signal } : {}),
  });
  if (res.statusCode === 206) {
    const start = rangeStart(res);
    if (start !== offset) {
      abandon(res.body);
      throw new BasaltError('invalid', `${what} of ${client.where(repository)}: asked for bytes from ${offset}, the registry sent from ${start ?? 'an unknown offset'}`, { hint: 'the registry mishandles Range requests' });
    }
    return { body: res.body as OpenedBody['body'], skip: 0 };
  }
  if (res.statusCode === 200) return { body: res.body as OpenedBody['body'], skip: offset };
  if (res.statusCode === 416) {
    abandon(res.body);
    throw new BasaltError('integrity', `${what} of ${client.where(repository)}: the registry has no bytes from offset ${offset} (descriptor says ${desc.size} bytes)`, { hint: 'the blob in the registry is shorter than its descriptor' });
  }
  return client.failWith(res, attempts, what, repository);
}

function rangeStart(res: HttpResponse): number | undefined {
  const m = /^bytes (\d+)-/.exec(header(res, 'content-range') ?? '');
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

/**
 * A blob's bytes from `offset` as one stream that survives dropped connections: when the
 * body breaks or ends before the descriptor's size, the rest is requested again with a Range
 * header (a few times, with back-off), so the reader simply sees the whole blob. The first
 * request is made before this returns, so a missing blob or a refusal is thrown here.
 * Integrity is the caller's job (VerifyingStream); this only guarantees no gaps or repeats.
 */
export async function openBlobStream(client: RegistryClient, repository: string, desc: Descriptor, options: { offset?: number; signal?: AbortSignal } = {}): Promise<Readable> {
  const signal = options.signal ?? client.options.signal;
  let offset = options.offset ?? 0;
  let current = await openAt(client, repository, desc, offset, signal);
  const policy = client.policy;
  const what = `blob ${desc.digest} of ${client.where(repository)}`;

  async function* bytes(): AsyncGenerator<Buffer> {
    let resumes = 0;
    try {
      for (;;) {
        let failure: unknown;
        try {
          for await (const raw of current.body) {
            let chunk = raw;
            if (current.skip > 0) {
              const drop = Math.min(current.skip, chunk.length);
              current.skip -= drop;
              chunk = chunk.subarray(drop);
              if (chunk.length === 0) continue;
            }
            offset += chunk.length;
            yield chunk;
          }
          if (offset >= desc.size) return;
          failure = new Error(`body ended at byte ${offset} of ${desc.size}`);
        } catch (e) {
          if (signal?.aborted) throw new BasaltError('interrupted', `${what}: interrupted`, { cause: e });
          if (!isRetryableNetworkError(e)) throw e instanceof BasaltError ? e : networkError(e, new URL(`https://${client.registry}`), `reading ${what}`);
          failure = e;
        }
        resumes++;
        if (resumes >= policy.attempts)
          throw new BasaltError('network', `${what}: the connection kept failing; got ${offset} of ${desc.size} bytes after ${resumes} attempts`, { hint: 'check the network and retry', cause: failure });
        const delay = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (resumes - 1));
        const reason = failure instanceof Error ? (errorCode(failure) ?? failure.message) : String(failure);
        client.log?.(`${what}: transfer broke at byte ${offset} of ${desc.size} (${reason}); resuming with a Range request in ${delay} ms (attempt ${resumes + 1} of ${policy.attempts})`);
        await sleep(delay, undefined, signal ? { signal } : undefined);
        current = await openAt(client, repository, desc, offset, signal);
      }
    } finally {
      // A consumer that stops early (or an error) must not leave the socket half-read.
      abandon(current.body);
    }
  }

  return Readable.from(bytes(), { objectMode: false, highWaterMark: 1 << 20 });
}
