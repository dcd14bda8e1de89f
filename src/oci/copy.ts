import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BasaltError } from './errors.js';
import { DigestingStream, digestOf } from './digest.js';
import { MediaType, layerCompression, layerMediaType, type Compression } from './media-types.js';
import { parseManifest, parseConfig, encodeJson, type Descriptor, type ImageIndex, type ImageManifest, type ManifestBlob, type ParsedManifest, type Platform } from './manifest.js';
import { hostPlatform, selectPlatform } from './platform.js';
import { openVerifiedBlob, readVerifiedBlob } from './blob.js';
import { mapLimit } from './pool.js';
import { compressStream, decompressStream } from './layer/compression.js';
import type { ImageDestination, ImageSource } from './transport.js';

export type ManifestFormat = 'oci' | 'v2s2';

export interface CopyOptions {
  /** Copy every image of an index, not only the one for `platform`. */
  all?: boolean;
  /** The platform picked from an index (default: this machine's). */
  platform?: Platform;
  /** Convert manifests to this format. */
  format?: ManifestFormat;
  /** Re-compress layers whose compression differs. */
  destCompress?: Compression;
  signal?: AbortSignal;
  onEvent?: (event: CopyEvent) => void;
  /**
   * Runs once the top manifest is known and before anything is written: the place the
   * signature policy check hooks in. Throwing refuses the copy with nothing written.
   */
  beforeWrite?: (top: ManifestBlob) => Promise<void>;
}

export type CopyEvent =
  | { type: 'blob-start'; digest: string; size: number; mediaType: string }
  | { type: 'blob-progress'; digest: string; bytes: number }
  | { type: 'blob-done'; digest: string; size: number; skipped: boolean }
  | { type: 'manifest'; digest: string; mediaType: string };

export interface CopyResult {
  /** Digest of the top manifest written at the destination. */
  digest: string;
  mediaType: string;
  manifests: number;
  blobsWritten: number;
  blobsSkipped: number;
  bytesWritten: number;
}

/** Copies an image (or a whole index with `all`) from `source` to `destination`, then commits. */
export async function copyImage(source: ImageSource, destination: ImageDestination, options: CopyOptions = {}): Promise<CopyResult> {
  const copier = new Copier(source, destination, options);
  try {
    const result = await copier.run();
    await destination.commit();
    return result;
  } catch (e) {
    await destination.abort().catch(() => undefined);
    throw e;
  }
}

class Copier {
  private readonly stats = { manifests: 0, blobsWritten: 0, blobsSkipped: 0, bytesWritten: 0 };

  constructor(
    private readonly source: ImageSource,
    private readonly dest: ImageDestination,
    private readonly options: CopyOptions,
  ) {}

  private emit(event: CopyEvent): void {
    this.options.onEvent?.(event);
  }

  async run(): Promise<CopyResult> {
    const topBlob = await this.source.getManifest();
    const top = parseManifest(topBlob.bytes, topBlob.mediaType, this.source.name);
    let written: ManifestBlob;
    if (top.kind === 'index' && this.options.all) {
      await this.options.beforeWrite?.(topBlob);
      written = await this.copyIndex(top, true);
    } else if (top.kind === 'index') {
      const want = this.options.platform ?? hostPlatform();
      const chosen = selectPlatform(top.manifest.manifests, want, this.source.name);
      const child = await this.fetchChild(chosen);
      if (child.kind !== 'image') throw new BasaltError('unsupported', `${this.source.name}: the entry for the platform is itself an index`);
      await this.options.beforeWrite?.({ bytes: child.bytes, mediaType: child.mediaType, digest: child.digest });
      written = await this.copySingle(child, true);
    } else {
      await this.options.beforeWrite?.(topBlob);
      written = await this.copySingle(top, true);
    }
    return { digest: written.digest, mediaType: written.mediaType, ...this.stats };
  }

  /** Fetches a manifest an index points at and checks it is what the index says. */
  private async fetchChild(desc: Descriptor): Promise<ParsedManifest> {
    const blob = await this.source.getManifest(desc.digest);
    const actual = digestOf(blob.bytes, desc.digest.startsWith('sha512:') ? 'sha512' : 'sha256');
    if (actual !== desc.digest || blob.bytes.length !== desc.size)
      throw new BasaltError('integrity', `manifest ${desc.digest} of ${this.source.name}: got ${blob.bytes.length} bytes with digest ${actual}`, { hint: 'the source is corrupt or was tampered with' });
    return parseManifest(blob.bytes, desc.mediaType, `manifest ${desc.digest} of ${this.source.name}`);
  }

  private targetIndexType(sourceType: string): string {
    const fmt = this.options.format;
    const wanted = fmt === 'oci' ? MediaType.OciIndex : fmt === 'v2s2' ? MediaType.DockerManifestList : sourceType;
    return this.supported(wanted, [MediaType.OciIndex, MediaType.DockerManifestList]);
  }

  private targetManifestType(sourceType: string): string {
    const fmt = this.options.format;
    const wanted = fmt === 'oci' ? MediaType.OciManifest : fmt === 'v2s2' ? MediaType.DockerManifest : sourceType;
    return this.supported(wanted, [MediaType.OciManifest, MediaType.DockerManifest]);
  }

  private supported(wanted: string, family: string[]): string {
    const accepted = this.dest.supportedManifestTypes;
    if (!accepted || accepted.includes(wanted)) return wanted;
    if (this.options.format) throw new BasaltError('unsupported', `${this.dest.name} cannot store ${wanted} manifests`, { hint: `it stores ${accepted.join(', ')}` });
    const alternative = accepted.find((t) => family.includes(t));
    if (!alternative) throw new BasaltError('unsupported', `${this.dest.name} cannot store ${wanted} manifests`);
    return alternative;
  }

  private async copyIndex(index: ParsedManifest & { kind: 'index' }, top: boolean): Promise<ManifestBlob> {
    const outType = this.targetIndexType(index.mediaType);
    let changed = outType !== index.mediaType;
    const children: Descriptor[] = [];
    // Children one at a time; each child's layers already run in parallel.
    for (const desc of index.manifest.manifests) {
      const child = await this.fetchChild(desc);
      const written = child.kind === 'index' ? await this.copyIndex(child, false) : await this.copySingle(child, false);
      const out: Descriptor = { ...desc, mediaType: written.mediaType, digest: written.digest, size: written.bytes.length };
      if (out.digest !== desc.digest || out.mediaType !== desc.mediaType) changed = true;
      children.push(out);
    }
    let blob: ManifestBlob;
    if (!changed) blob = { bytes: index.bytes, mediaType: index.mediaType, digest: index.digest };
    else {
      const doc: ImageIndex = { schemaVersion: 2, mediaType: outType, manifests: children };
      if (outType === MediaType.OciIndex) {
        if (index.manifest.artifactType) doc.artifactType = index.manifest.artifactType;
        if (index.manifest.subject) doc.subject = index.manifest.subject;
        if (index.manifest.annotations) doc.annotations = index.manifest.annotations;
      }
      blob = encodeManifest(doc, outType);
    }
    return this.putManifest(blob, top);
  }

  private async copySingle(image: ParsedManifest & { kind: 'image' }, top: boolean): Promise<ManifestBlob> {
    const m = image.manifest;
    const outType = this.targetManifestType(image.mediaType);
    const toV2s2 = outType === MediaType.DockerManifest;
    const configBytes = await readVerifiedBlob(this.source, m.config);
    const diffIds = isImageConfig(m.config.mediaType) ? parseConfig(configBytes, `config of ${this.source.name}`).rootfs.diff_ids : [];
    const configType = convertConfigType(m.config.mediaType, toV2s2);
    const config: Descriptor = { ...m.config, mediaType: configType };
    await this.putSmallBlob(config, configBytes);

    const layers = await mapLimit(m.layers, this.dest.maxParallelBlobs, (layer, i) => this.copyLayer(layer, diffIds[i], toV2s2));
    const unchanged = outType === image.mediaType && configType === m.config.mediaType && layers.every((l, i) => sameDescriptor(l, m.layers[i] as Descriptor));
    let blob: ManifestBlob;
    if (unchanged) blob = { bytes: image.bytes, mediaType: image.mediaType, digest: image.digest };
    else {
      const doc: ImageManifest = { schemaVersion: 2, mediaType: outType, config, layers };
      if (!toV2s2) {
        if (m.artifactType) doc.artifactType = m.artifactType;
        if (m.subject) doc.subject = m.subject;
        if (m.annotations) doc.annotations = m.annotations;
      } else {
        for (const l of layers) delete l.annotations;
        delete config.annotations;
      }
      blob = encodeManifest(doc, outType);
    }
    return this.putManifest(blob, top);
  }

  private async putManifest(blob: ManifestBlob, top: boolean): Promise<ManifestBlob> {
    await this.dest.putManifest(blob, { top });
    this.stats.manifests++;
    this.emit({ type: 'manifest', digest: blob.digest, mediaType: blob.mediaType });
    return blob;
  }

  private async putSmallBlob(desc: Descriptor, bytes: Buffer): Promise<void> {
    if (await this.dest.hasBlob(desc, this.source.location)) return;
    await this.dest.putBlob(Readable.from([bytes]), { mediaType: desc.mediaType, digest: desc.digest, size: desc.size });
    this.stats.blobsWritten++;
    this.stats.bytesWritten += bytes.length;
  }

  private async copyLayer(layer: Descriptor, diffId: string | undefined, toV2s2: boolean): Promise<Descriptor> {
    const from = layerCompression(layer.mediaType);
    if (from === undefined) return this.copyBlobAsIs(layer, layer.mediaType); // not a layer we understand: bytes as they are
    let to = this.options.destCompress ?? from;
    if (toV2s2 && to === 'zstd') {
      if (this.options.destCompress === 'zstd') throw new BasaltError('usage', 'Docker v2s2 manifests cannot carry zstd layers', { hint: 'use --format oci with --dest-compress zstd' });
      to = 'gzip';
    }
    const mediaType = convertLayerType(layer.mediaType, toV2s2, to);
    if (to === from) return this.copyBlobAsIs(layer, mediaType);
    return this.recompressLayer(layer, diffId, from, to, mediaType);
  }

  private async copyBlobAsIs(layer: Descriptor, mediaType: string): Promise<Descriptor> {
    const out: Descriptor = { ...layer, mediaType };
    this.emit({ type: 'blob-start', digest: layer.digest, size: layer.size, mediaType });
    if (await this.dest.hasBlob(layer, this.source.location)) {
      this.stats.blobsSkipped++;
      this.emit({ type: 'blob-done', digest: layer.digest, size: layer.size, skipped: true });
      return out;
    }
    // The destination verifies digest and size of what it is given (the ImageDestination
    // contract), so the bytes are hashed once, not twice: hashing is a third of a copy's CPU.
    const data = await this.source.getBlob(layer, this.options.signal ? { signal: this.options.signal } : {});
    const info = { mediaType, digest: layer.digest, size: layer.size, ...(layer.annotations ? { annotations: layer.annotations } : {}) };
    await this.dest.putBlob(data, info, (n) => this.emit({ type: 'blob-progress', digest: layer.digest, bytes: n }));
    this.stats.blobsWritten++;
    this.stats.bytesWritten += layer.size;
    this.emit({ type: 'blob-done', digest: layer.digest, size: layer.size, skipped: false });
    return out;
  }

  private async recompressLayer(layer: Descriptor, diffId: string | undefined, from: Compression, to: Compression, mediaType: string): Promise<Descriptor> {
    this.emit({ type: 'blob-start', digest: layer.digest, size: layer.size, mediaType });
    const verified = await openVerifiedBlob(this.source, layer, this.options.signal);
    const uncompressed = new DigestingStream(diffId?.startsWith('sha512:') ? 'sha512' : 'sha256');
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    const stages = [verified, decompressStream(from), uncompressed, ...(to === 'none' ? [] : [compressStream(to)]), out] as const;
    const piping = pipeline(stages as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream]);
    const [stored] = await Promise.all([
      this.dest.putBlob(out, { mediaType }, (n) => this.emit({ type: 'blob-progress', digest: layer.digest, bytes: n })),
      piping,
    ]);
    if (diffId !== undefined && uncompressed.digest !== diffId)
      throw new BasaltError('integrity', `layer ${layer.digest} of ${this.source.name}: uncompressed content is ${uncompressed.digest}, the config's diff_id says ${diffId}`, { hint: 'the image is corrupt' });
    this.stats.blobsWritten++;
    this.stats.bytesWritten += stored.size;
    this.emit({ type: 'blob-done', digest: layer.digest, size: stored.size, skipped: false });
    const desc: Descriptor = { mediaType, digest: stored.digest, size: stored.size };
    if (layer.annotations) desc.annotations = layer.annotations;
    return desc;
  }
}

function encodeManifest(doc: ImageManifest | ImageIndex, mediaType: string): ManifestBlob {
  const bytes = encodeJson(doc);
  return { bytes, mediaType, digest: digestOf(bytes) };
}

function isImageConfig(mt: string): boolean {
  return mt === MediaType.OciConfig || mt === MediaType.DockerConfig;
}

function convertConfigType(mt: string, toV2s2: boolean): string {
  if (!isImageConfig(mt)) return mt;
  return toV2s2 ? MediaType.DockerConfig : MediaType.OciConfig;
}

function convertLayerType(mt: string, toV2s2: boolean, compression: Compression): string {
  const foreign = mt === MediaType.DockerLayerForeignGzip || mt.includes('nondistributable');
  if (foreign) {
    if (toV2s2) return MediaType.DockerLayerForeignGzip;
    return compression === 'gzip' ? MediaType.OciLayerNondistributableGzip : compression === 'zstd' ? MediaType.OciLayerNondistributableZstd : MediaType.OciLayerNondistributable;
  }
  return layerMediaType(toV2s2 ? 'v2s2' : 'oci', compression);
}

function sameDescriptor(a: Descriptor, b: Descriptor): boolean {
  return a.digest === b.digest && a.mediaType === b.mediaType && a.size === b.size;
}

