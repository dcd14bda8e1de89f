/**
 * `oci:DIR[:REF]` — an OCI image layout directory (image-spec image-layout.md), with the
 * reference rules of containers/image's `oci:` transport. The reading side is written against
 * `LayoutFiles` so that oci-archive (an indexed tar) serves the same logic by random access.
 *
 * Writers make nothing visible before commit: blobs land content-addressed (a blob nobody
 * references is harmless), and commit rewrites index.json atomically under an exclusive lock so
 * concurrent writers (the local store) keep each other's entries.
 */
import { open, readFile, rename, rm, stat, readdir, rmdir, unlink, mkdir, link } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pipeline as pipelineCb, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { BasaltError, ioError, isBasaltError } from '../errors.js';
import { DigestingStream, VerifyingStream, digestOf, parseDigest, type Digest } from '../digest.js';
import { MediaType, isIndexType, isImageManifestType } from '../media-types.js';
import { MAX_MANIFEST_BYTES, encodeJson, parseManifest, type Descriptor, type ImageIndex, type ManifestBlob } from '../manifest.js';
import { fsyncDir, tempPathFor, writeFileAtomic, writeStreamAtomic } from '../fsutil.js';
import type { BlobInfo, BlobReadOptions, ImageDestination, ImageSource, ProgressSink, Transport, TransportOptions } from '../transport.js';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
export const OCI_LAYOUT_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';
const LAYOUT_VERSION = '1.0.0';

// containers/image's rule for the REF part (image-spec's ref.name grammar): components of
// alphanumerics joined by [-._:@+] or "--", separated by '/'.
const REF_COMPONENT = '(?:[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)';
const REF_PATTERN = new RegExp(`^${REF_COMPONENT}(?:/${REF_COMPONENT})*$`);

export interface LayoutReference {
  dir: string;
  /** The ref.name annotation; undefined when the name has no `:REF`. */
  ref: string | undefined;
}

/**
 * Splits `DIR[:REF]` on the first ':' as containers/image does on Linux, so a directory name
 * cannot contain ':' but a REF can (`oci:/d:localhost/app:1`).
 */
export function parseLayoutReference(reference: string, transport = 'oci'): LayoutReference {
  const colon = reference.indexOf(':');
  const dir = colon < 0 ? reference : reference.slice(0, colon);
  const ref = colon < 0 ? undefined : reference.slice(colon + 1);
  if (dir === '') throw new BasaltError('usage', `${transport}:${reference}: no path given`, { hint: `write it as ${transport}:PATH[:REF]` });
  if (ref !== undefined && ref !== '' && !REF_PATTERN.test(ref))
    throw new BasaltError('usage', `${transport}:${reference}: "${ref}" is not a valid image reference name`, {
      hint: 'use letters, digits and . _ - : @ + separated by /, e.g. latest or localhost/app:1',
    });
  return { dir, ref: ref === '' ? undefined : ref };
}

/** The path of a blob inside a layout; the digest is validated so it cannot name anything else. */
export function blobPath(digest: Digest, what = 'blob'): string {
  const { algorithm, hex } = parseDigest(digest, what);
  return `blobs/${algorithm}/${hex}`;
}

/** Read access to the files of a layout, wherever they live (a directory, an indexed tar). */
export interface LayoutFiles {
  /** Names the container of the files in messages (`directory /x`, `archive /x.tar`). */
  readonly description: string;
  /** A whole small file; 'not-found' when absent, 'invalid' when larger than maxBytes. */
  read(relPath: string, maxBytes: number): Promise<Buffer>;
  /** A stream of the file from `offset`; 'not-found' when absent. */
  open(relPath: string, offset: number): Promise<Readable>;
}

/** LayoutFiles over a plain directory. */
export class DirectoryFiles implements LayoutFiles {
  readonly description: string;
  constructor(readonly dir: string) {
    this.description = `directory ${dir}`;
  }

  async read(relPath: string, maxBytes: number): Promise<Buffer> {
    const path = join(this.dir, relPath);
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw ioError(`${this.description}: ${relPath}`, e);
    }
    try {
      const { size } = await fh.stat();
      if (size > maxBytes) throw new BasaltError('invalid', `${path} is ${size} bytes, over the ${maxBytes}-byte limit for this file`);
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }

  async open(relPath: string, offset: number): Promise<Readable> {
    let fh;
    try {
      fh = await open(join(this.dir, relPath), 'r');
    } catch (e) {
      throw ioError(`${this.description}: ${relPath}`, e);
    }
    return fh.createReadStream({ start: offset, autoClose: true, highWaterMark: 1 << 20 });
  }
}

function invalidIndex(what: string, reason: string): BasaltError {
  return new BasaltError('invalid', `${what}: ${reason}`, { hint: 'the layout\'s index.json is corrupt; restore it or remove the layout and copy the images again' });
}

/** Parses index.json bytes, checking what the layout logic relies on. */
export function parseIndexJson(bytes: Buffer, what: string): ImageIndex {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw invalidIndex(what, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalidIndex(what, 'not a JSON object');
  const o = doc as Record<string, unknown>;
  if (o.schemaVersion !== 2) throw invalidIndex(what, `schemaVersion is ${JSON.stringify(o.schemaVersion)}, expected 2`);
  if (!Array.isArray(o.manifests)) throw invalidIndex(what, 'no manifests array');
  for (const [i, m] of (o.manifests as unknown[]).entries()) {
    const d = m as Partial<Descriptor> | null;
    if (typeof d !== 'object' || d === null || typeof d.mediaType !== 'string' || typeof d.digest !== 'string' || typeof d.size !== 'number')
      throw invalidIndex(what, `manifests[${i}] is not a descriptor (mediaType, digest, size)`);
    try {
      parseDigest(d.digest, `${what} manifests[${i}]`);
    } catch (e) {
      throw invalidIndex(what, (e as Error).message);
    }
  }
  return o as unknown as ImageIndex;
}

export async function readLayoutIndex(files: LayoutFiles): Promise<ImageIndex> {
  const what = `${files.description}: index.json`;
  let bytes: Buffer;
  try {
    bytes = await files.read(INDEX_FILE, MAX_MANIFEST_BYTES);
  } catch (e) {
    if (isBasaltError(e, 'not-found'))
      throw new BasaltError('not-found', `${files.description} is not an OCI image layout (no index.json)`, { hint: 'check the path; an OCI layout has oci-layout, index.json and blobs/', cause: e });
    throw e;
  }
  return parseIndexJson(bytes, what);
}

function refName(d: Descriptor): string | undefined {
  return d.annotations?.[REF_NAME_ANNOTATION];
}

function availableRefs(index: ImageIndex): string {
  const refs = index.manifests.map(refName).filter((r): r is string => r !== undefined);
  return refs.length ? `available: ${refs.join(', ')}` : 'the layout has no named images';
}

/**
 * Picks the index.json entry a reference names, as containers/image does: with REF the first
 * manifest or index whose ref.name equals it; without, the only entry.
 */
export function selectIndexEntry(index: ImageIndex, ref: string | undefined, what: string): Descriptor {
  if (ref === undefined) {
    const only = index.manifests[0];
    if (index.manifests.length === 1 && only) return only;
    if (index.manifests.length === 0) throw new BasaltError('not-found', `${what}: the layout holds no images`, { hint: 'copy an image into it first' });
    throw new BasaltError('usage', `${what}: the layout holds ${index.manifests.length} images; say which one`, { hint: `append :REF to the name; ${availableRefs(index)}` });
  }
  const named = index.manifests.filter((m) => refName(m) === ref);
  const usable = named.find((m) => isImageManifestType(m.mediaType) || isIndexType(m.mediaType));
  if (usable) return usable;
  if (named[0]) throw new BasaltError('unsupported', `${what}: "${ref}" names an artifact of type ${named[0].mediaType}, not an image`);
  throw new BasaltError('not-found', `${what}: no image named "${ref}"`, { hint: availableRefs(index) });
}

/** An image source reading a layout through LayoutFiles. */
export class LayoutSource implements ImageSource {
  constructor(
    readonly name: string,
    private readonly files: LayoutFiles,
    private readonly top: Descriptor,
    private readonly onClose: () => Promise<void> = async () => {},
  ) {}

  async getManifest(digest?: string): Promise<ManifestBlob> {
    const want = digest ?? this.top.digest;
    const what = `${this.name}: manifest ${want}`;
    const bytes = await this.files.read(blobPath(want, what), MAX_MANIFEST_BYTES);
    const got = digestOf(bytes, parseDigest(want).algorithm);
    if (got !== want)
      throw new BasaltError('integrity', `${what}: the stored bytes have digest ${got}`, { hint: 'the layout is corrupt; copy the image into it again' });
    if (want === this.top.digest) {
      if (bytes.length !== this.top.size) throw new BasaltError('integrity', `${what}: ${bytes.length} bytes stored, index.json declares ${this.top.size}`);
      return { bytes, mediaType: this.top.mediaType, digest: want };
    }
    return { bytes, mediaType: parseManifest(bytes, undefined, what).mediaType, digest: want };
  }

  async getBlob(desc: Descriptor, options: BlobReadOptions = {}): Promise<Readable> {
    const what = `${this.name}: blob ${desc.digest}`;
    try {
      return await this.files.open(blobPath(desc.digest, what), options.offset ?? 0);
    } catch (e) {
      if (isBasaltError(e, 'not-found') && desc.urls?.length)
        throw new BasaltError('not-found', `${what} is a non-distributable layer that the layout does not hold`, { hint: `it is published at ${desc.urls.join(', ')}`, cause: e });
      if (isBasaltError(e, 'not-found')) throw new BasaltError('not-found', `${what} is missing from the layout`, { hint: 'the layout is incomplete; copy the image into it again', cause: e });
      throw e;
    }
  }

  close(): Promise<void> {
    return this.onClose();
  }
}

/** Opens the image `ref` names in a layout reachable through `files`. */
export async function openLayoutSource(name: string, files: LayoutFiles, ref: string | undefined, onClose?: () => Promise<void>): Promise<LayoutSource> {
  const index = await readLayoutIndex(files);
  const top = selectIndexEntry(index, ref, name);
  return new LayoutSource(name, files, top, onClose);
}

// ---------------------------------------------------------------------------------------------
// Locking: index.json read-modify-write is serialised by an O_EXCL lock file in the layout.

const LOCK_FILE = 'index.json.lock';
/** A lock older than this is stale even if its pid is alive (pid reuse, other hosts): holders keep it for milliseconds. */
const LOCK_STALE_MS = 10 * 60 * 1000;
const LOCK_TIMEOUT_MS = 60 * 1000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readLockOwner(path: string): Promise<{ content: string; pid: number; host: string; mtimeMs: number } | undefined> {
  try {
    const [content, st] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    const [pid, host] = content.split('\n');
    return { content, pid: Number(pid), host: host ?? '', mtimeMs: st.mtimeMs };
  } catch {
    return undefined;
  }
}

/**
 * Runs `fn` holding the layout's exclusive lock. A lock whose owner process is gone (same host)
 * or that is older than ten minutes is broken; the break renames the lock aside first and puts
 * it back if it turns out to belong to a new owner, so two breakers cannot both win.
 */
export async function withLayoutLock<T>(dir: string, fn: () => Promise<T>, timeoutMs = LOCK_TIMEOUT_MS): Promise<T> {
  const lockPath = join(dir, LOCK_FILE);
  const token = `${process.pid}\n${hostname()}\n${randomBytes(8).toString('hex')}\n`;
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx', 0o644);
      try {
        await fh.writeFile(token);
      } finally {
        await fh.close();
      }
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new BasaltError('not-found', `${dir}: no such layout directory`, { hint: 'check the path', cause: e });
      if (code !== 'EEXIST') throw ioError(`locking ${lockPath}`, e);
    }
    const owner = await readLockOwner(lockPath);
    if (owner) {
      const deadOwner = owner.host === hostname() && Number.isInteger(owner.pid) && owner.pid > 0 && !pidAlive(owner.pid);
      if (deadOwner || Date.now() - owner.mtimeMs > LOCK_STALE_MS) {
        const aside = `${lockPath}.stale-${randomBytes(4).toString('hex')}`;
        try {
          await rename(lockPath, aside);
          const moved = await readFile(aside, 'utf8');
          // Someone replaced the stale lock between our read and rename: give it back.
          if (moved !== owner.content) await link(aside, lockPath).catch(() => undefined);
          await unlink(aside);
        } catch {
          // Another process broke it first; just retry.
        }
        continue;
      }
    }
    if (Date.now() > deadline)
      throw new BasaltError('io', `timed out waiting for the lock ${lockPath}${owner ? ` (held by pid ${owner.pid} on ${owner.host})` : ''}`, {
        hint: 'another basalt process is writing this layout; if none is running, remove the lock file',
      });
    await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
    delay = Math.min(delay * 2, 200);
  }
  try {
    return await fn();
  } finally {
    // Only remove the lock if it is still ours (a breaker may have judged us stale).
    const current = await readFile(lockPath, 'utf8').catch(() => undefined);
    if (current === token) await unlink(lockPath).catch(() => undefined);
  }
}

/** index.json of a layout directory, or undefined when the layout does not exist yet. */
async function readIndexFile(dir: string): Promise<ImageIndex | undefined> {
  const path = join(dir, INDEX_FILE);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(`reading ${path}`, e);
  }
  return parseIndexJson(bytes, path);
}

async function writeIndexFile(dir: string, index: ImageIndex): Promise<void> {
  await writeFileAtomic(join(dir, INDEX_FILE), encodeJson(index));
}

async function ensureLayoutFile(dir: string): Promise<void> {
  const path = join(dir, OCI_LAYOUT_FILE);
  let bytes: Buffer | undefined;
  try {
    bytes = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`reading ${path}`, e);
  }
  if (bytes === undefined) {
    await writeFileAtomic(path, encodeJson({ imageLayoutVersion: LAYOUT_VERSION }));
    return;
  }
  let version: unknown;
  try {
    version = (JSON.parse(bytes.toString('utf8')) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
  } catch {
    version = undefined;
  }
  if (typeof version !== 'string' || !version.startsWith('1.'))
    throw new BasaltError('unsupported', `${path}: image layout version ${JSON.stringify(version)} is not 1.x`, { hint: 'write to a new directory' });
}

function emptyIndex(): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
}

/**
 * Puts `entry` into the index the way containers/image does: a named entry replaces any entry
 * with the same name; an entry (named or not) also replaces an unnamed one with the same digest,
 * so repeated unnamed copies do not pile up. Other entries keep their order.
 */
function addIndexEntry(index: ImageIndex, entry: Descriptor): ImageIndex {
  const name = refName(entry);
  const manifests = index.manifests.filter((m) => {
    const n = refName(m);
    if (name !== undefined && n === name) return false;
    if (n === undefined && m.digest === entry.digest) return false;
    return true;
  });
  manifests.push(entry);
  return { ...index, manifests };
}

export interface LayoutRef {
  ref: string;
  descriptor: Descriptor;
}

/** The named entries of a layout's index.json, in index order; [] when the layout does not exist. */
export async function listLayoutRefs(dir: string): Promise<LayoutRef[]> {
  const index = await readIndexFile(dir);
  if (!index) return [];
  const out: LayoutRef[] = [];
  for (const d of index.manifests) {
    const ref = refName(d);
    if (ref !== undefined) out.push({ ref, descriptor: d });
  }
  return out;
}

/** Removes the entries named `ref` from index.json (blobs stay until gcLayout). Returns what was removed. */
export async function removeLayoutRef(dir: string, ref: string): Promise<Descriptor> {
  return withLayoutLock(dir, async () => {
    const index = await readIndexFile(dir);
    const removed = index?.manifests.find((m) => refName(m) === ref);
    if (!index || !removed) throw new BasaltError('not-found', `oci:${dir}: no image named "${ref}"`, { hint: index ? availableRefs(index) : 'the layout does not exist' });
    await writeIndexFile(dir, { ...index, manifests: index.manifests.filter((m) => refName(m) !== ref) });
    return removed;
  });
}

async function readBlobIfManifest(dir: string, d: Descriptor): Promise<Buffer | undefined> {
  if (!isIndexType(d.mediaType) && !isImageManifestType(d.mediaType)) return undefined;
  const path = join(dir, blobPath(d.digest));
  const bytes = await readFile(path).catch((e: unknown) => {
    throw ioError(`${path} (manifest ${d.digest})`, e);
  });
  return bytes;
}

/** Every blob digest reachable from `roots` (manifests are read to follow their references). */
async function reachableBlobs(dir: string, roots: Descriptor[], missingOk: boolean): Promise<Set<Digest>> {
  const seen = new Set<Digest>();
  const queue = [...roots];
  while (queue.length) {
    const d = queue.pop() as Descriptor;
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    let bytes: Buffer | undefined;
    try {
      bytes = await readBlobIfManifest(dir, d);
    } catch (e) {
      if (missingOk && isBasaltError(e, 'not-found')) continue;
      throw e;
    }
    if (!bytes) continue;
    const parsed = parseManifest(bytes, d.mediaType, `${dir}: manifest ${d.digest}`);
    if (parsed.kind === 'index') queue.push(...parsed.manifest.manifests);
    else queue.push(parsed.manifest.config, ...parsed.manifest.layers);
    if (parsed.manifest.subject) queue.push(parsed.manifest.subject);
  }
  return seen;
}

export interface GcResult {
  removed: Digest[];
  freedBytes: number;
}

/**
 * Deletes blobs that nothing in index.json reaches, and temp files left by crashed writers.
 * A writer running at the same time may lose blobs it has not committed yet; its commit then
 * fails cleanly (commit checks every referenced blob exists under the lock) rather than
 * committing a broken image. `graceMs` spares blobs modified that recently.
 */
export async function gcLayout(dir: string, options: { graceMs?: number } = {}): Promise<GcResult> {
  const grace = options.graceMs ?? 0;
  return withLayoutLock(dir, async () => {
    const index = (await readIndexFile(dir)) ?? emptyIndex();
    const keep = await reachableBlobs(dir, index.manifests, true);
    const result: GcResult = { removed: [], freedBytes: 0 };
    const now = Date.now();
    const algs = await readdir(join(dir, 'blobs')).catch(() => [] as string[]);
    for (const alg of algs) {
      const algDir = join(dir, 'blobs', alg);
      const names = await readdir(algDir).catch(() => [] as string[]);
      for (const name of names) {
        const path = join(algDir, name);
        const st = await stat(path).catch(() => undefined);
        if (!st?.isFile()) continue;
        const isTemp = name.startsWith('.');
        // Temp files of live writers are young; only sweep ones older than an hour.
        if (isTemp ? now - st.mtimeMs < 3600_000 : keep.has(`${alg}:${name}`) || now - st.mtimeMs < grace) continue;
        await rm(path, { force: true });
        if (!isTemp) result.removed.push(`${alg}:${name}`);
        result.freedBytes += st.size;
      }
    }
    return result;
  });
}

// ---------------------------------------------------------------------------------------------
// Destination

/** A pass-through that reports bytes to a progress sink. */
export function progressStream(progress: ProgressSink | undefined): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      progress?.(chunk.length);
      cb(null, chunk);
    },
  });
}

/** `source` piped through `transforms`, with errors of every stage surfacing on the result. */
export function chainStreams(source: Readable, ...transforms: Transform[]): Readable {
  if (transforms.length === 0) return source;
  return pipelineCb([source, ...transforms], () => {
    // Errors reach the last stream (which the consumer reads); nothing more to do here.
  }) as unknown as Readable;
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    const st = await stat(path);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

export class OciLayoutDestination implements ImageDestination {
  readonly supportedManifestTypes = undefined;
  readonly acceptsZstd = true;
  readonly maxParallelBlobs = 4;
  private top: Descriptor | undefined;
  private readonly temps = new Set<string>();
  /** Blob files this destination created (not ones it found present), for abort. */
  private readonly wrote = new Set<string>();
  private createdDir = false;
  private committed = false;

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly ref: string | undefined,
  ) {}

  private async ensureDir(): Promise<void> {
    if (this.createdDir) return;
    const st = await stat(this.dir).catch(() => undefined);
    if (st && !st.isDirectory()) throw new BasaltError('usage', `${this.name}: ${this.dir} exists and is not a directory`, { hint: 'choose a directory path' });
    if (!st) {
      await mkdir(this.dir, { recursive: true }).catch((e: unknown) => {
        throw ioError(`creating ${this.dir}`, e);
      });
      this.createdDir = true;
    }
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    const size = await fileSize(join(this.dir, blobPath(desc.digest, `${this.name}: blob`)));
    return size !== undefined && size === desc.size;
  }

  async putBlob(data: Readable, info: BlobInfo, progress?: ProgressSink): Promise<Descriptor> {
    await this.ensureDir();
    const describe = (digest: Digest, size: number): Descriptor => {
      const d: Descriptor = { mediaType: info.mediaType, digest, size };
      if (info.annotations) d.annotations = info.annotations;
      return d;
    };
    if (info.digest !== undefined) {
      const what = `${this.name}: blob ${info.digest}`;
      const path = join(this.dir, blobPath(info.digest, what));
      const existing = await fileSize(path);
      if (existing !== undefined && (info.size === undefined || existing === info.size)) {
        data.destroy();
        progress?.(existing);
        return describe(info.digest, existing);
      }
      const verifier = new VerifyingStream(info.digest, info.size, what, progress);
      await writeStreamAtomic(path, chainStreams(data, verifier));
      this.wrote.add(path);
      return describe(info.digest, verifier.bytes);
    }
    // Unknown digest (a re-compressed layer): hash while spooling into the layout, then rename.
    const tmp = tempPathFor(join(this.dir, 'blobs', 'sha256', 'upload'));
    this.temps.add(tmp);
    try {
      await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
      const digester = new DigestingStream('sha256');
      await pipeline(data, digester, progressStream(progress), createWriteStream(tmp, { mode: 0o644 }));
      if (info.size !== undefined && digester.size !== info.size)
        throw new BasaltError('integrity', `${this.name}: blob of type ${info.mediaType}: got ${digester.size} bytes, expected ${info.size}`);
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      const final = join(this.dir, blobPath(digester.digest));
      const existed = (await fileSize(final)) !== undefined;
      await rename(tmp, final);
      await fsyncDir(join(this.dir, 'blobs', 'sha256'));
      if (!existed) this.wrote.add(final);
      return describe(digester.digest, digester.size);
    } catch (e) {
      await rm(tmp, { force: true });
      throw ioError(`${this.name}: writing a blob`, e);
    } finally {
      this.temps.delete(tmp);
    }
  }

  async putManifest(manifest: ManifestBlob, options: { top: boolean }): Promise<void> {
    const d = await this.putBlob(Readable.from([manifest.bytes]), {
      mediaType: manifest.mediaType,
      digest: manifest.digest,
      size: manifest.bytes.length,
    });
    if (options.top) this.top = { mediaType: manifest.mediaType, digest: d.digest, size: d.size };
  }

  async commit(): Promise<void> {
    const top = this.top;
    if (!top) throw new Error(`${this.name}: commit without a top-level manifest (putManifest with top: true)`);
    const entry: Descriptor = { ...top };
    if (this.ref !== undefined) entry.annotations = { [REF_NAME_ANNOTATION]: this.ref };
    await this.ensureDir();
    await withLayoutLock(this.dir, async () => {
      const index = (await readIndexFile(this.dir)) ?? emptyIndex();
      // A concurrent gcLayout may have removed blobs we wrote: check before naming the image.
      await this.checkComplete(top);
      await ensureLayoutFile(this.dir);
      await writeIndexFile(this.dir, addIndexEntry(index, entry));
    });
    this.committed = true;
  }

  private async checkComplete(top: Descriptor): Promise<void> {
    const reachable = await reachableBlobs(this.dir, [top], false);
    for (const digest of reachable) {
      if ((await fileSize(join(this.dir, blobPath(digest)))) === undefined)
        throw new BasaltError('integrity', `${this.name}: blob ${digest} the image references is not in the layout`, {
          hint: 'it was not copied or was removed by a concurrent garbage collection; copy the image again',
        });
    }
  }

  async abort(): Promise<void> {
    for (const tmp of this.temps) await rm(tmp, { force: true });
    this.temps.clear();
    if (this.committed) return;
    // In a layout that has no index.json yet, the blobs we wrote would be a half-layout that
    // nothing names: remove them. Only our own files go, under the lock, so a concurrent
    // writer's blobs stay (if it relied on one of ours, its commit check reports it cleanly).
    if (this.wrote.size > 0) {
      await withLayoutLock(this.dir, async () => {
        if ((await readIndexFile(this.dir).catch(() => emptyIndex())) !== undefined) return;
        for (const path of this.wrote) await rm(path, { force: true });
      }).catch(() => undefined);
      this.wrote.clear();
    }
    if (this.createdDir) {
      // Empty directories only: rmdir fails harmlessly when someone else's files are there.
      for (const d of ['blobs/sha256', 'blobs/sha512', 'blobs', '.']) await rmdir(join(this.dir, d)).catch(() => undefined);
    }
  }
}

export const ociLayoutTransport: Transport = {
  name: 'oci',
  async openSource(reference: string, _options: TransportOptions): Promise<ImageSource> {
    const { dir, ref } = parseLayoutReference(reference, 'oci');
    return openLayoutSource(`oci:${reference}`, new DirectoryFiles(dir), ref);
  },
  async openDestination(reference: string, _options: TransportOptions): Promise<ImageDestination> {
    const { dir, ref } = parseLayoutReference(reference, 'oci');
    return new OciLayoutDestination(`oci:${reference}`, dir, ref);
  },
};
