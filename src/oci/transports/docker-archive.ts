/**
 * `docker-archive:FILE[:REF]` — the tar `docker save` and `podman save --format docker-archive`
 * write and `docker load` / `podman load` read: manifest.json ([{Config, RepoTags, Layers}]),
 * the config as a file, each layer as an uncompressed tar file (HEX.tar, or HEX/layer.tar from
 * older docker, possibly a symlink to another layer's file), and `repositories`.
 *
 * REF follows containers/image: for a source, `NAME[:TAG]` picks the image whose RepoTags hold
 * it (docker normalisation: `busybox` is `docker.io/library/busybox:latest`) and `@N` the N-th
 * image; for a destination, `NAME[:TAG]` becomes the RepoTags entry.
 */
import { Readable } from 'node:stream';
import { createReadStream } from 'node:fs';
import { BasaltError } from '../errors.js';
import { DigestingStream, VerifyingStream, digestOf, parseDigest, type Digest } from '../digest.js';
import { MediaType, layerCompression } from '../media-types.js';
import { encodeJson, parseConfig, parseManifest, type Descriptor, type ManifestBlob } from '../manifest.js';
import { formatReference, parseReference, withDefaultTag } from '../reference.js';
import { autoDecompress, detectCompression } from '../layer/compression.js';
import type { BlobInfo, BlobReadOptions, ImageDestination, ImageSource, ProgressSink, Transport, TransportOptions } from '../transport.js';
import { chainStreams, progressStream } from './oci-layout.js';
import { ArchiveWriter, IndexedArchive, readAllLimited, safeMemberPath } from './tar-archive.js';

/** The media type of an uncompressed Docker layer, which is how docker archives store layers. */
export const DOCKER_LAYER_TAR = MediaType.DockerLayer;
const MAX_MANIFEST_JSON_BYTES = 4 * 1024 * 1024;
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

interface ArchiveManifestItem {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

export interface DockerArchiveReference {
  file: string;
  /** A normalised `registry/repository:tag` name. */
  name: string | undefined;
  /** `@N`: the N-th image of manifest.json (sources only). */
  index: number | undefined;
}

/** Splits `FILE[:NAME[:TAG]|:@N]` on the first ':' as containers/image does. */
export function parseDockerArchiveReference(reference: string, forDestination: boolean): DockerArchiveReference {
  const colon = reference.indexOf(':');
  const file = colon < 0 ? reference : reference.slice(0, colon);
  const rest = colon < 0 ? '' : reference.slice(colon + 1);
  if (file === '') throw new BasaltError('usage', `docker-archive:${reference}: no path given`, { hint: 'write it as docker-archive:FILE[:NAME[:TAG]]' });
  if (rest === '') return { file, name: undefined, index: undefined };
  if (rest.startsWith('@')) {
    if (forDestination) throw new BasaltError('usage', `docker-archive:${reference}: @N selects an image to read; a destination takes NAME[:TAG]`);
    if (!/^@\d+$/.test(rest)) throw new BasaltError('usage', `docker-archive:${reference}: "${rest}" is not @N with N an image number`);
    return { file, name: undefined, index: Number(rest.slice(1)) };
  }
  const r = parseReference(rest);
  if (r.digest !== undefined) throw new BasaltError('usage', `docker-archive:${reference}: docker archives do not support digest references`, { hint: 'use NAME:TAG' });
  return { file, name: formatReference(withDefaultTag(r)), index: undefined };
}

/** RepoTags as written by any tool, normalised like docker does (unparsable tags are skipped). */
function normaliseRepoTag(tag: string): string | undefined {
  try {
    return formatReference(withDefaultTag(parseReference(tag)));
  } catch {
    return undefined;
  }
}

function parseArchiveManifest(bytes: Buffer, what: string): ArchiveManifestItem[] {
  const bad = (why: string): never => {
    throw new BasaltError('invalid', `${what}: manifest.json ${why}`, { hint: 'the archive is not a docker-archive or is corrupt' });
  };
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    return bad(`is not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(doc)) return bad('is not a JSON array');
  return doc.map((item: unknown, i): ArchiveManifestItem => {
    const o = item as Partial<Record<keyof ArchiveManifestItem, unknown>> | null;
    if (typeof o !== 'object' || o === null) return bad(`entry ${i} is not an object`);
    if (typeof o.Config !== 'string') return bad(`entry ${i} has no Config`);
    if (!Array.isArray(o.Layers) || !o.Layers.every((l) => typeof l === 'string')) return bad(`entry ${i} has no Layers list`);
    const tags = o.RepoTags === null || o.RepoTags === undefined ? [] : o.RepoTags;
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) return bad(`entry ${i} has a malformed RepoTags`);
    return { Config: o.Config, RepoTags: tags as string[], Layers: o.Layers as string[] };
  });
}

function chooseItem(items: ArchiveManifestItem[], ref: DockerArchiveReference, what: string): ArchiveManifestItem {
  const listing = (): string => items.map((it, i) => `@${i}${it.RepoTags.length ? ` (${it.RepoTags.join(', ')})` : ''}`).join(', ');
  if (ref.index !== undefined) {
    const item = items[ref.index];
    if (!item) throw new BasaltError('not-found', `${what}: no image @${ref.index}; the archive holds ${items.length}`, { hint: `available: ${listing()}` });
    return item;
  }
  if (ref.name === undefined) {
    const only = items[0];
    if (items.length === 1 && only) return only;
    if (items.length === 0) throw new BasaltError('invalid', `${what}: the archive holds no images (manifest.json is empty)`);
    throw new BasaltError('usage', `${what}: the archive holds ${items.length} images; say which one`, { hint: `append :NAME:TAG or :@N; available: ${listing()}` });
  }
  const found = items.find((it) => it.RepoTags.some((t) => normaliseRepoTag(t) === ref.name));
  if (!found) throw new BasaltError('not-found', `${what}: no image tagged ${ref.name}`, { hint: `available: ${listing()}` });
  return found;
}

interface MemberBlob {
  path: string;
  desc: Descriptor;
}

export class DockerArchiveSource implements ImageSource {
  private constructor(
    readonly name: string,
    private readonly archive: IndexedArchive,
    private readonly manifest: ManifestBlob,
    private readonly blobs: Map<Digest, MemberBlob>,
  ) {}

  static async open(name: string, ref: DockerArchiveReference): Promise<DockerArchiveSource> {
    const archive = await IndexedArchive.open(ref.file);
    try {
      const items = parseArchiveManifest(await archive.read('manifest.json', MAX_MANIFEST_JSON_BYTES), name);
      const item = chooseItem(items, ref, name);
      const configPath = safeMemberPath(item.Config, `${name}: manifest.json Config`);
      const layerPaths = item.Layers.map((l, i) => safeMemberPath(l, `${name}: manifest.json Layers[${i}]`));
      const configBytes = await archive.read(configPath, MAX_CONFIG_BYTES);
      const config = parseConfig(configBytes, `${name}: ${configPath}`);
      const diffIds = config.rootfs.diff_ids;
      if (diffIds.length !== layerPaths.length)
        throw new BasaltError('invalid', `${name}: manifest.json lists ${layerPaths.length} layers but the config has ${diffIds.length} diff_ids`, { hint: 'the archive is corrupt' });
      const blobs = new Map<Digest, MemberBlob>();
      const configDesc: Descriptor = { mediaType: MediaType.DockerConfig, digest: digestOf(configBytes), size: configBytes.length };
      blobs.set(configDesc.digest, { path: configPath, desc: configDesc });
      const layers: Descriptor[] = [];
      for (const [i, path] of layerPaths.entries()) {
        const size = archive.sizeOf(path);
        const kind = detectCompression(await archive.head(path, 4));
        let desc: Descriptor;
        if (kind === 'none') {
          // The file is the uncompressed layer, so its digest is the diff_id; readers verify it.
          desc = { mediaType: DOCKER_LAYER_TAR, digest: diffIds[i] as string, size };
        } else if (kind === 'gzip') {
          const hasher = new DigestingStream('sha256');
          for await (const _chunk of chainStreams(await archive.open(path, 0), hasher)) void _chunk;
          desc = { mediaType: MediaType.DockerLayerGzip, digest: hasher.digest, size };
        } else {
          throw new BasaltError('unsupported', `${name}: layer ${path} is zstd-compressed, which docker archives cannot carry`, { hint: 'copy the image with oci-archive: instead' });
        }
        if (!blobs.has(desc.digest)) blobs.set(desc.digest, { path, desc });
        layers.push(desc);
      }
      const manifestBytes = encodeJson({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config: configDesc, layers });
      const manifest: ManifestBlob = { bytes: manifestBytes, mediaType: MediaType.DockerManifest, digest: digestOf(manifestBytes) };
      return new DockerArchiveSource(name, archive, manifest, blobs);
    } catch (e) {
      await archive.close();
      throw e;
    }
  }

  async getManifest(digest?: string): Promise<ManifestBlob> {
    if (digest !== undefined && digest !== this.manifest.digest)
      throw new BasaltError('not-found', `${this.name}: no manifest ${digest}; a docker archive image has only ${this.manifest.digest}`);
    return this.manifest;
  }

  async getBlob(desc: Descriptor, options: BlobReadOptions = {}): Promise<Readable> {
    const blob = this.blobs.get(desc.digest);
    if (!blob) throw new BasaltError('not-found', `${this.name}: no blob ${desc.digest} in the image`);
    return this.archive.open(blob.path, options.offset ?? 0);
  }

  close(): Promise<void> {
    return this.archive.close();
  }
}

/** Layers are recognised by type; anything else offered (the config) is small and kept in memory. */
function isLayerType(mt: string): boolean {
  return layerCompression(mt) !== undefined || (mt !== MediaType.DockerConfig && mt !== MediaType.OciConfig && /layer|rootfs/.test(mt));
}

interface StoredLayer {
  /** The member's name, `HEX.tar`. */
  path: string;
  /** The uncompressed digest: what the config's diff_id must say. */
  diffId: Digest;
  size: number;
}

export class DockerArchiveDestination implements ImageDestination {
  readonly supportedManifestTypes = [MediaType.DockerManifest] as const;
  readonly acceptsZstd = false;
  readonly maxParallelBlobs = 1;
  private readonly archive: ArchiveWriter;
  /** Layers written, by the digest they were offered under and by their uncompressed digest. */
  private readonly layers = new Map<Digest, StoredLayer>();
  /** Non-layer blobs (the config) wait in memory until the manifest says which one is the config. */
  private readonly smallBlobs = new Map<Digest, Buffer>();
  private item: ArchiveManifestItem | undefined;
  private readonly writtenNames = new Set<string>();

  constructor(
    readonly name: string,
    readonly file: string,
    readonly repoTag: string | undefined,
  ) {
    this.archive = new ArchiveWriter(file, name);
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    return this.layers.has(desc.digest) || this.smallBlobs.has(desc.digest);
  }

  async putBlob(data: Readable, info: BlobInfo, progress?: ProgressSink): Promise<Descriptor> {
    const what = `${this.name}: blob ${info.digest ?? `of type ${info.mediaType}`}`;
    const verified = info.digest !== undefined ? chainStreams(data, new VerifyingStream(info.digest, info.size, what), progressStream(progress)) : chainStreams(data, progressStream(progress));
    if (!isLayerType(info.mediaType)) {
      const bytes = await readAllLimited(verified, MAX_CONFIG_BYTES, what);
      const digest = info.digest ?? digestOf(bytes);
      this.smallBlobs.set(digest, bytes);
      return { mediaType: info.mediaType, digest, size: bytes.length };
    }
    if (info.digest !== undefined) {
      const known = this.layers.get(info.digest);
      if (known) {
        verified.destroy();
        return { mediaType: DOCKER_LAYER_TAR, digest: known.diffId, size: known.size };
      }
    }
    let stored: StoredLayer;
    if (layerCompression(info.mediaType) === 'none' && info.digest !== undefined && info.size !== undefined) {
      // Already an uncompressed tar of known size: straight into the archive.
      const path = `${parseDigest(info.digest, what).hex}.tar`;
      stored = { path, diffId: info.digest, size: info.size };
      if (!this.writtenNames.has(path)) await this.archive.addFile(path, info.size, verified);
      else verified.destroy();
    } else {
      // Docker archives hold layers uncompressed; the uncompressed size is unknown until written.
      const diff = new DigestingStream('sha256');
      const spool = await this.archive.spool(await autoDecompress(verified), [diff]);
      try {
        stored = { path: `${parseDigest(diff.digest).hex}.tar`, diffId: diff.digest, size: diff.size };
        if (!this.writtenNames.has(stored.path)) await this.archive.addFile(stored.path, stored.size, createReadStream(spool));
      } finally {
        await this.archive.dropSpool(spool);
      }
    }
    this.writtenNames.add(stored.path);
    this.layers.set(stored.diffId, stored);
    if (info.digest !== undefined) this.layers.set(info.digest, stored);
    return { mediaType: DOCKER_LAYER_TAR, digest: stored.diffId, size: stored.size };
  }

  async putManifest(manifest: ManifestBlob, options: { top: boolean }): Promise<void> {
    const parsed = parseManifest(manifest.bytes, manifest.mediaType, `${this.name}: manifest`);
    if (parsed.kind === 'index')
      throw new BasaltError('unsupported', `${this.name}: a docker archive holds single images, not an index`, { hint: 'copy one platform (without --all)' });
    if (!options.top) return;
    const m = parsed.manifest;
    const configBytes = this.smallBlobs.get(m.config.digest);
    if (!configBytes) throw new BasaltError('integrity', `${this.name}: the manifest's config ${m.config.digest} was not written`);
    const config = parseConfig(configBytes, `${this.name}: config`);
    const layers = m.layers.map((l, i) => {
      const stored = this.layers.get(l.digest);
      if (!stored) throw new BasaltError('integrity', `${this.name}: layer ${i} (${l.digest}) was not written`);
      return stored;
    });
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== layers.length)
      throw new BasaltError('invalid', `${this.name}: the image has ${layers.length} layers but its config lists ${diffIds.length} diff_ids`, { hint: 'the image is corrupt' });
    layers.forEach((stored, i) => {
      if (stored.diffId !== diffIds[i])
        throw new BasaltError('integrity', `${this.name}: layer ${i} uncompresses to ${stored.diffId} but the config's diff_id says ${diffIds[i]}`, { hint: 'the image is corrupt' });
    });
    const configPath = `${parseDigest(m.config.digest).hex}.json`;
    await this.archive.addFile(configPath, configBytes.length, configBytes);
    this.item = { Config: configPath, RepoTags: this.repoTag ? [this.repoTag] : [], Layers: layers.map((l) => l.path) };
  }

  async commit(): Promise<void> {
    const item = this.item;
    if (!item) throw new Error(`${this.name}: commit without a top-level manifest (putManifest with top: true)`);
    const manifestJson = encodeJson([item]);
    await this.archive.addFile('manifest.json', manifestJson.length, manifestJson);
    if (this.repoTag) {
      // `repositories` is docker's legacy index (name → tag → top layer id); loaders that know
      // manifest.json ignore it, but docker and podman write it, so we do too.
      const colon = this.repoTag.lastIndexOf(':');
      const top = item.Layers[item.Layers.length - 1]?.replace(/\.tar$/, '') ?? '';
      const repositories = encodeJson({ [this.repoTag.slice(0, colon)]: { [this.repoTag.slice(colon + 1)]: top } });
      await this.archive.addFile('repositories', repositories.length, repositories);
    }
    await this.archive.commit();
  }

  abort(): Promise<void> {
    return this.archive.abort();
  }
}

export const dockerArchiveTransport: Transport = {
  name: 'docker-archive',
  async openSource(reference: string, _options: TransportOptions): Promise<ImageSource> {
    return DockerArchiveSource.open(`docker-archive:${reference}`, parseDockerArchiveReference(reference, false));
  },
  async openDestination(reference: string, _options: TransportOptions): Promise<ImageDestination> {
    const ref = parseDockerArchiveReference(reference, true);
    return new DockerArchiveDestination(`docker-archive:${reference}`, ref.file, ref.name);
  },
};
