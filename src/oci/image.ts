import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { BasaltError } from './errors.js';
import { digestOf } from './digest.js';
import { MediaType, layerCompression } from './media-types.js';
import { parseConfig, parseManifest, encodeJson, type Descriptor, type ImageConfig, type ImageManifest, type ManifestBlob, type Platform } from './manifest.js';
import { hostPlatform, selectPlatform } from './platform.js';
import { openVerifiedBlob, readVerifiedBlob } from './blob.js';
import { decompressStream } from './layer/compression.js';
import { mapLimit } from './pool.js';
import type { ImageDestination, ImageSource } from './transport.js';

/**
 * A layer: its compressed blob and the digest of its uncompressed tar. Layers from a source
 * read from it (verified); layers basalt made read from a scratch file.
 */
export interface Layer {
  readonly descriptor: Descriptor;
  readonly diffId: string;
  /** The blob as stored (compressed), verified against the descriptor. */
  open(): Promise<Readable>;
}

/**
 * An image as a value: config plus layers. Mutations (mutate.ts) return new Images; `raw`
 * keeps the bytes an unmodified image was read with so its digests survive a write.
 */
export interface Image {
  /** OCI or Docker v2s2 image manifest media type. */
  readonly manifestType: string;
  readonly config: ImageConfig;
  readonly layers: readonly Layer[];
  readonly annotations?: Record<string, string>;
  readonly raw?: { manifest: ManifestBlob; configBytes: Buffer; configDescriptor: Descriptor };
}

/** Opens a layer's uncompressed tar stream. */
export async function openUncompressed(layer: Layer): Promise<Readable> {
  const compression = layerCompression(layer.descriptor.mediaType);
  if (compression === undefined) throw new BasaltError('unsupported', `layer ${layer.descriptor.digest} has media type ${layer.descriptor.mediaType}, which is not a filesystem layer`);
  const blob = await layer.open();
  if (compression === 'none') return blob;
  const out = decompressStream(compression);
  blob.on('error', (e) => out.destroy(e));
  return blob.pipe(out);
}

/** A layer backed by a blob file basalt wrote (already verified when written). */
export function fileLayer(path: string, descriptor: Descriptor, diffId: string): Layer {
  return { descriptor, diffId, open: async () => createReadStream(path, { highWaterMark: 1 << 20 }) };
}

/** Reads the image a source names, picking `platform` (default: this machine's) from an index. */
export async function readImage(source: ImageSource, options: { platform?: Platform } = {}): Promise<Image> {
  const topBlob = await source.getManifest();
  let parsed = parseManifest(topBlob.bytes, topBlob.mediaType, source.name);
  let blob = topBlob;
  if (parsed.kind === 'index') {
    const chosen = selectPlatform(parsed.manifest.manifests, options.platform ?? hostPlatform(), source.name);
    blob = await source.getManifest(chosen.digest);
    if (digestOf(blob.bytes) !== chosen.digest && !chosen.digest.startsWith('sha512:'))
      throw new BasaltError('integrity', `manifest ${chosen.digest} of ${source.name} does not match its digest`);
    parsed = parseManifest(blob.bytes, chosen.mediaType, `manifest ${chosen.digest} of ${source.name}`);
    if (parsed.kind !== 'image') throw new BasaltError('unsupported', `${source.name}: nested index for the platform`);
  }
  const manifest = parsed.manifest as ImageManifest;
  if (manifest.config.mediaType !== MediaType.OciConfig && manifest.config.mediaType !== MediaType.DockerConfig)
    throw new BasaltError('unsupported', `${source.name} is not a container image (config media type ${manifest.config.mediaType})`, { hint: 'it may be an artifact such as a signature; copy it, but it cannot be unpacked or mutated' });
  const configBytes = await readVerifiedBlob(source, manifest.config);
  const config = parseConfig(configBytes, `config of ${source.name}`);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length)
    throw new BasaltError('invalid', `${source.name}: manifest has ${manifest.layers.length} layers but the config lists ${diffIds.length} diff_ids`);
  const layers = manifest.layers.map((d, i): Layer => ({ descriptor: d, diffId: diffIds[i] as string, open: () => openVerifiedBlob(source, d) }));
  const image: Image = {
    manifestType: parsed.mediaType,
    config,
    layers,
    raw: { manifest: { bytes: blob.bytes, mediaType: parsed.mediaType, digest: parsed.digest }, configBytes, configDescriptor: manifest.config },
    ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
  };
  return image;
}

/** The config blob and manifest an image is written as; unmodified images keep their bytes. */
export function serializeImage(image: Image): { configBytes: Buffer; configDescriptor: Descriptor; manifest: ManifestBlob } {
  if (image.raw) return { configBytes: image.raw.configBytes, configDescriptor: image.raw.configDescriptor, manifest: image.raw.manifest };
  const isOci = image.manifestType === MediaType.OciManifest;
  const configBytes = encodeJson(image.config);
  const configDescriptor: Descriptor = { mediaType: isOci ? MediaType.OciConfig : MediaType.DockerConfig, digest: digestOf(configBytes), size: configBytes.length };
  const doc: ImageManifest = { schemaVersion: 2, mediaType: image.manifestType, config: configDescriptor, layers: image.layers.map((l) => l.descriptor) };
  if (isOci && image.annotations && Object.keys(image.annotations).length) doc.annotations = image.annotations;
  const bytes = encodeJson(doc);
  return { configBytes, configDescriptor, manifest: { bytes, mediaType: image.manifestType, digest: digestOf(bytes) } };
}

/** Writes an image to a destination (layers already there are skipped), then commits. */
export async function writeImage(image: Image, destination: ImageDestination, onEvent?: (e: { digest: string; size: number; skipped: boolean }) => void): Promise<ManifestBlob> {
  const { configBytes, configDescriptor, manifest } = serializeImage(image);
  try {
    await mapLimit(image.layers, destination.maxParallelBlobs, async (layer) => {
      const d = layer.descriptor;
      if (await destination.hasBlob(d)) return onEvent?.({ digest: d.digest, size: d.size, skipped: true });
      await destination.putBlob(await layer.open(), { mediaType: d.mediaType, digest: d.digest, size: d.size });
      onEvent?.({ digest: d.digest, size: d.size, skipped: false });
    });
    if (!(await destination.hasBlob(configDescriptor)))
      await destination.putBlob(Readable.from([configBytes]), { mediaType: configDescriptor.mediaType, digest: configDescriptor.digest, size: configDescriptor.size });
    await destination.putManifest(manifest, { top: true });
    await destination.commit();
    return manifest;
  } catch (e) {
    await destination.abort().catch(() => undefined);
    throw e;
  }
}
