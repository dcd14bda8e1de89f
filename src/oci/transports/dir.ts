/**
 * `dir:PATH` — skopeo's directory transport (containers/image `directory`, format 1.1):
 *
 *     PATH/version                  "Directory Transport Version: 1.1\n"
 *     PATH/manifest.json            the top manifest, bytes as they are
 *     PATH/<hex>.manifest.json      manifests an index points at (copied with --all)
 *     PATH/<hex>                    every blob, config included, named by its digest's hex
 *     PATH/signature-N              simple signatures of the top manifest, N = 1, 2, …
 *     PATH/<hex>.signature-N        those of an index's instance
 *
 * One image per directory. The source verifies what it can (manifests by digest where a
 * digest is asked for; blobs are verified by the destination, as for every transport).
 * The destination writes into a hidden sibling directory and swaps it in at commit, so the
 * image appears whole or not at all and an aborted copy leaves the old content as it was.
 */
import { link, mkdir, open, readdir, rename, rm, stat, copyFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BasaltError, ioError } from '../errors.js';
import { DigestingStream, VerifyingStream, digestOf, parseDigest, type Digest } from '../digest.js';
import { MAX_MANIFEST_BYTES, parseManifest, type Descriptor, type ManifestBlob } from '../manifest.js';
import { fsyncDir, writeFileAtomic, writeStreamAtomic } from '../fsutil.js';
import { chainStreams, progressStream } from './oci-layout.js';
import type { BlobInfo, BlobReadOptions, ImageDestination, ImageSource, ProgressSink, Transport, TransportOptions } from '../transport.js';

export const DIR_VERSION = 'Directory Transport Version: 1.1\n';
/** Versions a reader accepts: 1.0 differs only in not having index instances. */
const READABLE_VERSIONS = ['Directory Transport Version: 1.0\n', DIR_VERSION];
/** containers/image stops reading signatures at the first missing one; a sane upper bound. */
const MAX_SIGNATURES = 128;
const MAX_SIGNATURE_BYTES = 4 * 1024 * 1024;

function hexOf(digest: Digest, what: string): string {
  return parseDigest(digest, what).hex;
}

function manifestFile(instance?: Digest): string {
  return instance === undefined ? 'manifest.json' : `${hexOf(instance, 'manifest digest')}.manifest.json`;
}

function signatureFile(index: number, instance?: Digest): string {
  return instance === undefined ? `signature-${index}` : `${hexOf(instance, 'manifest digest')}.signature-${index}`;
}

function parseDirReference(reference: string): string {
  if (reference === '') throw new BasaltError('usage', 'dir: needs a path', { hint: 'write it as dir:PATH' });
  return reference;
}

async function readSmall(path: string, what: string, limit: number): Promise<Buffer | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(what, e);
  }
  try {
    const { size } = await fh.stat();
    if (size > limit) throw new BasaltError('invalid', `${what} is ${size} bytes, over the ${limit}-byte limit for it`);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/** Checks the version file of an existing dir: image; undefined when there is none. */
async function readVersion(dir: string, name: string): Promise<string | undefined> {
  const bytes = await readSmall(join(dir, 'version'), `${name}: version`, 4096);
  if (bytes === undefined) return undefined;
  const text = bytes.toString('utf8');
  if (!READABLE_VERSIONS.includes(text))
    throw new BasaltError('unsupported', `${name}: ${JSON.stringify(text.trim())} is not a directory transport version basalt reads`, { hint: `basalt reads and writes "${DIR_VERSION.trim()}"` });
  return text;
}

/**
 * The simple signatures stored beside an image in a dir: (signature-1, -2, … up to the first
 * missing one), for the top manifest or an index's instance. Raw OpenPGP bytes, as skopeo
 * writes them.
 */
export async function readDirSignatures(dir: string, instance?: Digest): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 1; i <= MAX_SIGNATURES; i++) {
    const file = signatureFile(i, instance);
    const sig = await readSmall(join(dir, file), `dir:${dir}: ${file}`, MAX_SIGNATURE_BYTES);
    if (sig === undefined) return out;
    out.push(sig);
  }
  throw new BasaltError('invalid', `dir:${dir} holds more than ${MAX_SIGNATURES} signatures; assuming it is corrupt`);
}

export class DirSource implements ImageSource {
  constructor(
    readonly name: string,
    readonly dir: string,
  ) {}

  async getManifest(digest?: string): Promise<ManifestBlob> {
    const file = manifestFile(digest);
    const what = `${this.name}: ${file}`;
    const bytes = await readSmall(join(this.dir, file), what, MAX_MANIFEST_BYTES);
    if (bytes === undefined) {
      // Asked by digest for the top manifest itself: it lives in manifest.json.
      if (digest !== undefined) {
        const top = await this.getManifest();
        if (top.digest === digest) return top;
      }
      if (digest === undefined)
        throw new BasaltError('not-found', `${this.name} is not an image directory (no manifest.json)`, { hint: 'check the path; skopeo copy … dir:PATH writes version, manifest.json and the blobs' });
      throw new BasaltError('not-found', `${this.name}: manifest ${digest} is missing (${file})`, { hint: 'the directory is incomplete; copy the image into it again (with --all for every platform)' });
    }
    if (digest !== undefined) {
      const got = digestOf(bytes, parseDigest(digest).algorithm);
      if (got !== digest) throw new BasaltError('integrity', `${what}: the stored bytes have digest ${got}, not ${digest}`, { hint: 'the directory is corrupt; copy the image into it again' });
    }
    // The directory stores no media type: it is read from the document, as containers/image guesses it.
    const parsed = parseManifest(bytes, undefined, what);
    return { bytes, mediaType: parsed.mediaType, digest: digest ?? parsed.digest };
  }

  async getBlob(desc: Descriptor, options: BlobReadOptions = {}): Promise<Readable> {
    const what = `${this.name}: blob ${desc.digest}`;
    const path = join(this.dir, hexOf(desc.digest, what));
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        const where = desc.urls?.length ? ` (a non-distributable layer, published at ${desc.urls.join(', ')})` : '';
        throw new BasaltError('not-found', `${what} is missing from the directory${where}`, { hint: 'the directory is incomplete; copy the image into it again', cause: e });
      }
      throw ioError(what, e);
    }
    return fh.createReadStream({ start: options.offset ?? 0, autoClose: true, highWaterMark: 1 << 20 });
  }

  /** Simple signatures of the top manifest, or of an instance when its digest is not the top's. */
  async signatures(manifestDigest: Digest): Promise<Buffer[]> {
    const top = await this.getManifest();
    return readDirSignatures(this.dir, manifestDigest === top.digest ? undefined : manifestDigest);
  }

  async close(): Promise<void> {}
}

export async function openDirSource(reference: string): Promise<DirSource> {
  const dir = parseDirReference(reference);
  const name = `dir:${reference}`;
  const st = await stat(dir).catch((e: unknown) => {
    throw ioError(name, e);
  });
  if (!st.isDirectory()) throw new BasaltError('usage', `${name}: ${dir} is not a directory`, { hint: 'dir: names a directory written by skopeo copy … dir:PATH or basalt image copy' });
  await readVersion(dir, name);
  return new DirSource(name, dir);
}

/**
 * Writes one image as a dir: directory. Everything goes into a hidden sibling first; commit
 * swaps it in place of the old directory (which must be empty or a dir: image, as skopeo
 * requires, so a typo cannot wipe an unrelated directory).
 */
export class DirDestination implements ImageDestination {
  readonly supportedManifestTypes = undefined;
  readonly acceptsZstd = true;
  readonly maxParallelBlobs = 4;
  private readonly staging: string;
  private staged = false;
  private topWritten = false;
  private topDigest: Digest | undefined;
  /** Simple signatures to write at commit, by instance digest ('' for the top manifest). */
  private readonly signatures = new Map<string, Buffer[]>();

  constructor(
    readonly name: string,
    readonly dir: string,
  ) {
    const abs = resolve(dir);
    this.staging = join(dirname(abs), `.${basename(abs)}.basalt-${process.pid}-${randomBytes(4).toString('hex')}`);
  }

  /** Refuses a target that is neither absent, empty, nor a dir: image, before anything is written. */
  async checkTarget(): Promise<void> {
    const st = await stat(this.dir).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw ioError(this.name, e);
    });
    if (!st) return;
    if (!st.isDirectory()) throw new BasaltError('usage', `${this.name}: ${this.dir} exists and is not a directory`, { hint: 'choose a new path' });
    const entries = await readdir(this.dir);
    if (entries.length === 0) return;
    if ((await readVersion(this.dir, this.name).catch(() => undefined)) === undefined)
      throw new BasaltError('usage', `${this.name}: ${this.dir} is not empty and not a dir: image (no valid version file); refusing to replace it`, { hint: 'choose an empty or new directory' });
  }

  /** The manifest digest committed (after commit). */
  get digest(): Digest | undefined {
    return this.topDigest;
  }

  private async ensureStaging(): Promise<void> {
    if (this.staged) return;
    await mkdir(dirname(this.staging), { recursive: true }).catch((e: unknown) => {
      throw ioError(`creating ${dirname(this.staging)}`, e);
    });
    await mkdir(this.staging, { mode: 0o755 }).catch((e: unknown) => {
      throw ioError(`creating ${this.staging}`, e);
    });
    this.staged = true;
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    const file = hexOf(desc.digest, `${this.name}: blob`);
    const mine = await stat(join(this.staging, file)).catch(() => undefined);
    if (mine?.isFile() && mine.size === desc.size) return true;
    // A re-run over an existing dir: image reuses its blobs (linked, or copied across filesystems).
    const old = await stat(join(this.dir, file)).catch(() => undefined);
    if (!old?.isFile() || old.size !== desc.size) return false;
    await this.ensureStaging();
    try {
      await link(join(this.dir, file), join(this.staging, file)).catch(() => copyFile(join(this.dir, file), join(this.staging, file)));
    } catch {
      return false;
    }
    return true;
  }

  async putBlob(data: Readable, info: BlobInfo, progress?: ProgressSink): Promise<Descriptor> {
    await this.ensureStaging();
    const describe = (digest: Digest, size: number): Descriptor => ({ mediaType: info.mediaType, digest, size, ...(info.annotations ? { annotations: info.annotations } : {}) });
    if (info.digest !== undefined) {
      const what = `${this.name}: blob ${info.digest}`;
      const verifier = new VerifyingStream(info.digest, info.size, what, progress);
      await writeStreamAtomic(join(this.staging, hexOf(info.digest, what)), chainStreams(data, verifier));
      return describe(info.digest, verifier.bytes);
    }
    // A re-compressed layer: its digest is known only once written.
    const tmp = join(this.staging, `.upload-${randomBytes(6).toString('hex')}`);
    try {
      const digester = new DigestingStream('sha256');
      await pipeline(data, digester, progressStream(progress), createWriteStream(tmp, { mode: 0o644 }));
      if (info.size !== undefined && digester.size !== info.size)
        throw new BasaltError('integrity', `${this.name}: blob of type ${info.mediaType}: got ${digester.size} bytes, expected ${info.size}`);
      await rename(tmp, join(this.staging, hexOf(digester.digest, 'blob')));
      return describe(digester.digest, digester.size);
    } catch (e) {
      await rm(tmp, { force: true });
      throw ioError(`${this.name}: writing a blob`, e);
    }
  }

  async putManifest(manifest: ManifestBlob, options: { top: boolean }): Promise<void> {
    await this.ensureStaging();
    const got = digestOf(manifest.bytes, parseDigest(manifest.digest).algorithm);
    if (got !== manifest.digest) throw new Error(`${this.name}: manifest bytes have digest ${got}, not the ${manifest.digest} given`);
    await writeFileAtomic(join(this.staging, manifestFile(options.top ? undefined : manifest.digest)), manifest.bytes);
    if (options.top) {
      this.topWritten = true;
      this.topDigest = manifest.digest;
    }
  }

  /**
   * Simple signatures to store with the image, written at commit: signature-N for the top
   * manifest, or <hex>.signature-N for an index's instance `instance`.
   */
  setSignatures(signatures: Buffer[], instance?: Digest): void {
    this.signatures.set(instance ?? '', signatures);
  }

  async commit(): Promise<void> {
    if (!this.topWritten) throw new Error(`${this.name}: commit without a top-level manifest (putManifest with top: true)`);
    await this.ensureStaging();
    for (const [instance, list] of this.signatures) {
      for (const [i, sig] of list.entries()) {
        if (sig.length === 0) throw new BasaltError('invalid', `${this.name}: refusing to store an empty signature`);
        await writeFileAtomic(join(this.staging, signatureFile(i + 1, instance === '' ? undefined : instance)), sig);
      }
    }
    await writeFileAtomic(join(this.staging, 'version'), DIR_VERSION);
    await this.checkTarget();
    const aside = `${this.staging}-old`;
    let moved = false;
    try {
      await rename(this.dir, aside);
      moved = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`${this.name}: moving the old directory aside`, e);
    }
    try {
      await rename(this.staging, this.dir);
    } catch (e) {
      if (moved) await rename(aside, this.dir).catch(() => undefined);
      throw ioError(`${this.name}: putting the new directory in place`, e);
    }
    this.staged = false;
    await fsyncDir(dirname(resolve(this.dir)));
    if (moved) await rm(aside, { recursive: true, force: true });
  }

  async abort(): Promise<void> {
    if (this.staged) await rm(this.staging, { recursive: true, force: true });
    this.staged = false;
  }
}

export async function openDirDestination(reference: string): Promise<DirDestination> {
  const dest = new DirDestination(`dir:${reference}`, parseDirReference(reference));
  await dest.checkTarget();
  return dest;
}

export const dirTransport: Transport = {
  name: 'dir',
  openSource(reference: string, _options: TransportOptions): Promise<ImageSource> {
    return openDirSource(reference);
  },
  openDestination(reference: string, _options: TransportOptions): Promise<ImageDestination> {
    return openDirDestination(reference);
  },
};
