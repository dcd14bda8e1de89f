/**
 * `containers-storage:REF` — images in podman's local storage, reached through podman itself
 * (the one place a copy runs another program): podman owns that storage's locking and layer
 * store, so basalt never writes it directly.
 *
 * Source: `podman image save --format oci-dir` into a temp dir, read as an `oci:` layout.
 * Destination: an oci-archive in a temp dir, then `podman load` and `podman tag` on commit.
 */
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BasaltError } from '../errors.js';
import { parseDigest } from '../digest.js';
import { makeTempDir } from '../fsutil.js';
import { MediaType } from '../media-types.js';
import { parseManifest, type Descriptor, type ManifestBlob } from '../manifest.js';
import { formatReference, parseReference, withDefaultTag } from '../reference.js';
import type { BlobInfo, ImageDestination, ImageSource, ProgressSink, Transport, TransportOptions } from '../transport.js';
import { DirectoryFiles, openLayoutSource } from './oci-layout.js';
import { OciArchiveDestination } from './oci-archive.js';

const PODMAN = 'podman';

interface PodmanResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs podman; a missing podman is a 'tool' error, a non-zero exit is returned to the caller. */
function podman(args: string[], signal?: AbortSignal): Promise<PodmanResult> {
  return new Promise((resolve, reject) => {
    execFile(PODMAN, args, { maxBuffer: 64 * 1024 * 1024, encoding: 'utf8', ...(signal ? { signal } : {}) }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new BasaltError('tool', 'containers-storage: needs podman, which is not installed', { hint: 'install podman (apt-get install podman) or use another transport' }));
        return;
      }
      if (err && (err as NodeJS.ErrnoException).code === 'ABORT_ERR') {
        reject(new BasaltError('interrupted', `podman ${args[0] ?? ''} was interrupted`, { cause: err }));
        return;
      }
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function podmanOrFail(args: string[], what: string, signal?: AbortSignal): Promise<string> {
  const r = await podman(args, signal);
  if (r.code !== 0)
    throw new BasaltError('tool', `${what}: podman ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`, { hint: 'see podman\'s message above' });
  return r.stdout;
}

/** The name podman gives an image: `localhost/` for names without a registry, `:latest` by default. */
export function normalisePodmanName(reference: string): string {
  const r = parseReference(reference, 'localhost');
  if (r.digest !== undefined) throw new BasaltError('usage', `containers-storage:${reference}: a destination is named NAME[:TAG], not by digest`);
  return formatReference(withDefaultTag(r));
}

function checkReference(reference: string): void {
  if (reference === '') throw new BasaltError('usage', 'containers-storage: no image named', { hint: 'write it as containers-storage:NAME[:TAG]' });
  if (reference.startsWith('['))
    throw new BasaltError('unsupported', `containers-storage:${reference}: a [driver@root] store specifier is not supported`, { hint: 'basalt uses podman\'s default storage; drop the [...] part' });
}

async function openStorageSource(reference: string, options: TransportOptions): Promise<ImageSource> {
  checkReference(reference);
  const name = `containers-storage:${reference}`;
  const exists = await podman(['image', 'exists', reference], options.signal);
  if (exists.code === 1) throw new BasaltError('not-found', `${name}: no such image in podman's storage`, { hint: 'list images with `podman images`' });
  if (exists.code !== 0) throw new BasaltError('tool', `${name}: podman image exists failed (exit ${exists.code}): ${exists.stderr.trim()}`);
  const dir = await makeTempDir('containers-storage');
  const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
  try {
    const layout = join(dir, 'layout');
    await podmanOrFail(['image', 'save', '--format', 'oci-dir', '-o', layout, reference], name, options.signal);
    return await openLayoutSource(name, new DirectoryFiles(layout), undefined, cleanup);
  } catch (e) {
    await cleanup();
    throw e;
  }
}

export class ContainersStorageDestination implements ImageDestination {
  readonly supportedManifestTypes = [MediaType.OciManifest, MediaType.DockerManifest] as const;
  readonly acceptsZstd = true;
  readonly maxParallelBlobs = 1;
  private archive: OciArchiveDestination | undefined;
  private dir: string | undefined;
  private configDigest: string | undefined;

  constructor(
    readonly name: string,
    /** The normalised name the image gets in podman's storage. */
    readonly imageName: string,
    private readonly signal: AbortSignal | undefined,
  ) {}

  private async inner(): Promise<OciArchiveDestination> {
    if (!this.archive) {
      this.dir = await makeTempDir('containers-storage');
      this.archive = new OciArchiveDestination(this.name, join(this.dir, 'image.tar'), this.imageName);
    }
    return this.archive;
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    return (await this.inner()).hasBlob(desc);
  }

  async putBlob(data: Readable, info: BlobInfo, progress?: ProgressSink): Promise<Descriptor> {
    return (await this.inner()).putBlob(data, info, progress);
  }

  async putManifest(manifest: ManifestBlob, options: { top: boolean }): Promise<void> {
    if (options.top) {
      const parsed = parseManifest(manifest.bytes, manifest.mediaType, `${this.name}: manifest`);
      if (parsed.kind === 'index')
        throw new BasaltError('unsupported', `${this.name}: podman's storage holds single images, not an index`, { hint: 'copy one platform (without --all)' });
      this.configDigest = parsed.manifest.config.digest;
    }
    await (await this.inner()).putManifest(manifest, options);
  }

  async commit(): Promise<void> {
    const archive = await this.inner();
    if (!this.configDigest) throw new Error(`${this.name}: commit without a top-level manifest (putManifest with top: true)`);
    await archive.commit();
    try {
      await podmanOrFail(['load', '-q', '-i', archive.file], this.name, this.signal);
      // podman's image ID is the config digest's hex; tagging by it names exactly what we loaded.
      await podmanOrFail(['tag', parseDigest(this.configDigest).hex, this.imageName], this.name, this.signal);
    } finally {
      await this.cleanup();
    }
  }

  private async cleanup(): Promise<void> {
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }

  async abort(): Promise<void> {
    await this.archive?.abort();
    await this.cleanup();
  }
}

export const containersStorageTransport: Transport = {
  name: 'containers-storage',
  openSource(reference: string, options: TransportOptions): Promise<ImageSource> {
    return openStorageSource(reference, options);
  },
  async openDestination(reference: string, options: TransportOptions): Promise<ImageDestination> {
    checkReference(reference);
    return new ContainersStorageDestination(`containers-storage:${reference}`, normalisePodmanName(reference), options.signal);
  },
};
