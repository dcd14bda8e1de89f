import type { Readable } from 'node:stream';
import { BasaltError, isBasaltError } from '../errors.js';
import type { Descriptor, ManifestBlob } from '../manifest.js';
import { formatReference, withDefaultTag, type ImageReference } from '../reference.js';
import type { BlobInfo, BlobReadOptions, ImageDestination, ImageSource, ProgressSink, Transport, TransportOptions } from '../transport.js';
import { openBlobStream } from './blob-reader.js';
import { cancelUpload, DEFAULT_MONOLITHIC_MAX, startUpload, uploadBlob } from './blob-upload.js';
import { RegistryClient } from './client.js';
import { discard, header } from './http.js';
import type { RegistryOptions } from './options.js';
import { enc, repoPathOf } from './paths.js';
import { loadRegistriesConf, pullSources, pushSettings, resolveName, type RegistriesConfig } from './registries-conf.js';

export { RegistryClient, checkLogin, type ManifestHead } from './client.js';
export { login, logout } from './login.js';
export type { RegistryOptions, RetryPolicy } from './options.js';

async function configFor(options: RegistryOptions): Promise<RegistriesConfig> {
  return loadRegistriesConf({
    ...(options.registriesConf !== undefined ? { path: options.registriesConf } : {}),
    ...(options.registriesConfDir !== undefined ? { dir: options.registriesConfDir } : {}),
    ...(options.env !== undefined ? { env: options.env } : {}),
  });
}

/**
 * A client and the resolved reference for a name (short names through registries.conf,
 * blocked registries refused), for commands that talk to a registry directly (tags, delete).
 */
export async function registryClientFor(name: string, options: RegistryOptions = {}): Promise<{ client: RegistryClient; reference: ImageReference }> {
  const config = await configFor(options);
  const reference = resolveName(name, config);
  const { insecure } = pushSettings(config, reference);
  return { client: new RegistryClient(reference.registry, { ...options, insecure: options.insecure ?? insecure }), reference };
}

/** A pull from one registry location (a mirror or the primary), chosen when it was opened. */
export class RegistrySource implements ImageSource {
  readonly name: string;
  readonly location: { registry: string; repository: string };

  constructor(
    readonly client: RegistryClient,
    /** Where the image is actually read from (after mirror/location rewriting). */
    readonly reference: ImageReference,
    private readonly top: ManifestBlob,
    requested: ImageReference,
  ) {
    this.name = `docker://${formatReference(requested)}`;
    this.location = { registry: reference.registry, repository: reference.repository };
  }

  async getManifest(digest?: string): Promise<ManifestBlob> {
    if (digest === undefined || digest === this.top.digest) return this.top;
    return this.client.getManifest(this.reference.repository, digest);
  }

  async getBlob(desc: Descriptor, options: BlobReadOptions = {}): Promise<Readable> {
    return openBlobStream(this.client, this.reference.repository, desc, options);
  }

  async close(): Promise<void> {
    // Connections are pooled and kept alive for the next operation; nothing to release.
  }
}

/**
 * Opens a pull: resolves the name, then tries each source registries.conf gives (mirrors
 * first, then the primary) by fetching the top manifest; the first that serves it is used.
 */
export async function openRegistrySource(referenceText: string, options: RegistryOptions = {}): Promise<RegistrySource> {
  const config = await configFor(options);
  const requested = withDefaultTag(resolveName(referenceText, config));
  const sources = pullSources(config, requested);
  let lastError: unknown;
  for (const source of sources) {
    const client = new RegistryClient(source.reference.registry, { ...options, insecure: source.insecure });
    const ref = withDefaultTag(source.reference);
    try {
      const top = await client.getManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest', options.signal ? { signal: options.signal } : {});
      if (source.mirror) options.log?.(`pulling ${formatReference(requested)} from mirror ${formatReference(ref)}`);
      return new RegistrySource(client, ref, top, requested);
    } catch (e) {
      lastError = e;
      if (isBasaltError(e, 'interrupted')) throw e;
      if (source.mirror) options.log?.(`mirror ${formatReference(ref)} failed (${e instanceof Error ? e.message : String(e)}); trying the next source`);
    }
  }
  throw lastError;
}

/** A push to one repository. Nothing is cached locally; blobs go straight to the registry. */
export class RegistryDestination implements ImageDestination {
  readonly name: string;
  readonly acceptsZstd = true;
  readonly maxParallelBlobs = 4;
  private readonly openUploads = new Set<string>();

  constructor(
    readonly client: RegistryClient,
    readonly reference: ImageReference,
    private readonly options: RegistryOptions,
  ) {
    this.name = `docker://${formatReference(reference)}`;
  }

  private get repository(): string {
    return this.reference.repository;
  }

  /**
   * Whether the blob is there. When it lives in another repository of this registry, a
   * cross-repository mount is tried first (one request, no data moved); a registry that
   * cannot mount opens an ordinary upload instead, which is cancelled.
   */
  async hasBlob(desc: Descriptor, from?: { registry: string; repository: string }): Promise<boolean> {
    if (from !== undefined && from.registry === this.reference.registry && from.repository !== this.repository) {
      try {
        const started = await startUpload(this.client, this.repository, `mount of blob ${desc.digest} from ${from.repository}`, this.options.signal, { mount: desc.digest, from: from.repository });
        if (started.status === 201) {
          this.options.log?.(`mounted blob ${desc.digest} from ${from.registry}/${from.repository} into ${this.repository}`);
          return true;
        }
        if (started.location !== undefined) await cancelUpload(this.client, this.repository, started.location);
      } catch (e) {
        if (isBasaltError(e, 'interrupted')) throw e;
        this.options.log?.(`cross-repository mount of ${desc.digest} from ${from.repository} failed (${e instanceof Error ? e.message : String(e)}); checking for the blob instead`);
      }
    }
    const what = `blob ${desc.digest}`;
    const { res, attempts } = await this.client.request({
      method: 'HEAD',
      path: `${repoPathOf(this.repository)}/blobs/${enc(desc.digest)}`,
      scopes: [{ repository: this.repository, actions: ['pull', 'push'] }],
      repository: this.repository,
      what,
      ...(this.options.signal ? { signal: this.options.signal } : {}),
    });
    await discard(res);
    if (res.statusCode === 404) return false;
    if (res.statusCode !== 200) return this.client.failWith(res, attempts, what, this.repository);
    const size = Number(header(res, 'content-length') ?? NaN);
    // A blob whose stored size differs is not the blob asked for; upload it (the registry will refuse a real clash).
    return !(Number.isFinite(size) && desc.size >= 0 && size !== desc.size);
  }

  async putBlob(data: Readable, info: BlobInfo, progress?: ProgressSink): Promise<Descriptor> {
    return uploadBlob(this.client, this.repository, data, info, {
      chunkSize: this.options.chunkSize,
      monolithicMaxBytes: this.options.monolithicMaxBytes ?? DEFAULT_MONOLITHIC_MAX,
      openUploads: this.openUploads,
      ...(progress ? { progress } : {}),
      ...(this.options.signal ? { signal: this.options.signal } : {}),
    });
  }

  /**
   * Children of an index go by digest; the top manifest by the destination's tag (or its
   * digest when the reference names one, which must then match).
   */
  async putManifest(manifest: ManifestBlob, options: { top: boolean }): Promise<void> {
    let target = manifest.digest;
    if (options.top) {
      if (this.reference.digest !== undefined && this.reference.digest !== manifest.digest)
        throw new BasaltError('integrity', `${this.name} names digest ${this.reference.digest}, but the manifest to push has digest ${manifest.digest}`, {
          hint: 'push to a tag, or to the digest of the manifest being pushed',
        });
      target = this.reference.tag ?? this.reference.digest ?? 'latest';
    }
    const what = `manifest ${target}`;
    const { res, attempts } = await this.client.request({
      method: 'PUT',
      path: `${repoPathOf(this.repository)}/manifests/${enc(target)}`,
      headers: { 'content-type': manifest.mediaType, 'content-length': String(manifest.bytes.length) },
      body: manifest.bytes,
      scopes: [{ repository: this.repository, actions: ['pull', 'push'] }],
      repository: this.repository,
      what,
      ...(this.options.signal ? { signal: this.options.signal } : {}),
    });
    if (res.statusCode !== 201 && res.statusCode !== 200 && res.statusCode !== 202) return this.client.failWith(res, attempts, what, this.repository);
    await discard(res);
    const stored = header(res, 'docker-content-digest');
    if (stored !== undefined && stored.startsWith('sha256:') && manifest.digest.startsWith('sha256:') && stored !== manifest.digest)
      throw new BasaltError('integrity', `${what} of ${this.name}: the registry stored it as ${stored}, not ${manifest.digest}`, { hint: 'the registry rewrote the manifest; push an OCI or Docker v2s2 manifest it accepts as is' });
  }

  async commit(): Promise<void> {
    // A registry makes a manifest visible when it is PUT; the top manifest goes last.
  }

  async abort(): Promise<void> {
    const open = [...this.openUploads];
    this.openUploads.clear();
    await Promise.all(open.map((location) => cancelUpload(this.client, this.repository, location)));
  }
}

export async function openRegistryDestination(referenceText: string, options: RegistryOptions = {}): Promise<RegistryDestination> {
  const config = await configFor(options);
  const reference = withDefaultTag(resolveName(referenceText, config));
  const { insecure } = pushSettings(config, reference);
  const client = new RegistryClient(reference.registry, { ...options, insecure });
  return new RegistryDestination(client, reference, options);
}

/** `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`: an OCI distribution registry. */
export const dockerTransport: Transport = {
  name: 'docker',
  openSource: (reference: string, options: TransportOptions) => openRegistrySource(stripPrefix(reference), options),
  openDestination: (reference: string, options: TransportOptions) => openRegistryDestination(stripPrefix(reference), options),
};

function stripPrefix(reference: string): string {
  if (reference.startsWith('docker://')) return reference.slice('docker://'.length);
  if (reference.startsWith('//')) return reference.slice(2);
  return reference;
}
