import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { PassThrough, type Writable } from 'node:stream';
import { BasaltError, ioError } from './errors.js';
import { MediaType, type Compression } from './media-types.js';
import { openUncompressed, type Image, type Layer } from './image.js';
import { appendLayers, emptyConfig, replaceLayers } from './mutate.js';
import { hostPlatform } from './platform.js';
import type { Platform } from './manifest.js';
import type { Scratch } from './scratch.js';
import { exportFlattened } from './layer/export.js';
import { applyLayer, type ApplyOptions, type ApplySummary } from './layer/apply.js';
import { packDirectory } from './layer/pack.js';
import { autoDecompress } from './layer/compression.js';

/** Filesystem-level operations on images: export, unpack, append, flatten, pack. */

/** Writes the image's flattened root filesystem (whiteouts applied) as one tar stream. */
export async function exportRootfs(image: Image, out: Writable): Promise<void> {
  await exportFlattened(image.layers.map((l) => () => openUncompressed(l)), out);
}

/** Applies every layer in order onto `dir`. */
export async function unpackImage(image: Image, dir: string, options: ApplyOptions = {}): Promise<ApplySummary[]> {
  const summaries: ApplySummary[] = [];
  for (const layer of image.layers) summaries.push(await applyLayer(await openUncompressed(layer), dir, options));
  return summaries;
}

export interface LayerFromPathOptions {
  compression?: Compression;
  format?: 'oci' | 'v2s2';
  sourceDateEpoch?: number;
  ownerRoot?: boolean;
}

/** A directory (packed reproducibly) or a tar file (any compression) as a new layer. */
export async function layerFromPath(scratch: Scratch, path: string, options: LayerFromPathOptions = {}): Promise<Layer> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw ioError(`layer source ${path}`, e);
  }
  const compression = options.compression ?? 'gzip';
  if (st.isDirectory()) {
    const tar = new PassThrough({ highWaterMark: 1 << 20 });
    const packing = packDirectory(path, tar, { ...(options.sourceDateEpoch !== undefined ? { sourceDateEpoch: options.sourceDateEpoch } : {}), ownerRoot: options.ownerRoot ?? false });
    packing.catch((e: unknown) => tar.destroy(e as Error));
    const [layer] = await Promise.all([scratch.writeLayer(tar, compression, options.format ?? 'oci'), packing]);
    return layer;
  }
  if (!st.isFile()) throw new BasaltError('usage', `layer source ${path} is neither a directory nor a tar file`);
  const tar = await autoDecompress(createReadStream(path, { highWaterMark: 1 << 20 }));
  return scratch.writeLayer(tar, compression, options.format ?? 'oci');
}

function formatOf(image: Image): 'oci' | 'v2s2' {
  return image.manifestType === MediaType.DockerManifest ? 'v2s2' : 'oci';
}

/** Appends a layer made from a directory or tar file. */
export async function appendPath(image: Image, scratch: Scratch, path: string, options: LayerFromPathOptions & { createdBy?: string } = {}): Promise<Image> {
  const layer = await layerFromPath(scratch, path, { ...options, format: formatOf(image) });
  const created = options.sourceDateEpoch !== undefined ? new Date(options.sourceDateEpoch * 1000).toISOString() : new Date().toISOString();
  return appendLayers(image, [layer], { created, created_by: options.createdBy ?? `basalt image append ${path}` });
}

/** Squashes all layers into one. */
export async function flattenImage(image: Image, scratch: Scratch, compression: Compression = 'gzip'): Promise<Image> {
  const tar = new PassThrough({ highWaterMark: 1 << 20 });
  const exporting = exportRootfs(image, tar);
  exporting.catch((e: unknown) => tar.destroy(e as Error));
  const [layer] = await Promise.all([scratch.writeLayer(tar, compression, formatOf(image)), exporting]);
  return replaceLayers(image, [layer], { created: image.config.created ?? new Date(0).toISOString(), created_by: 'basalt image flatten', comment: `flattened from ${image.layers.length} layers` });
}

export interface PackOptions extends LayerFromPathOptions {
  platform?: Platform;
  /** Used for `created` and clamps file times, for byte-identical output. */
  sourceDateEpoch?: number;
}

/** A directory into a one-layer image; reproducible given SOURCE_DATE_EPOCH. */
export async function packImage(dir: string, scratch: Scratch, options: PackOptions = {}): Promise<Image> {
  const created = options.sourceDateEpoch !== undefined ? new Date(options.sourceDateEpoch * 1000).toISOString() : new Date().toISOString();
  const base: Image = { manifestType: options.format === 'v2s2' ? MediaType.DockerManifest : MediaType.OciManifest, config: emptyConfig(options.platform ?? hostPlatform(), created), layers: [] };
  const layer = await layerFromPath(scratch, dir, options);
  return appendLayers(base, [layer], { created, created_by: 'basalt image pack' });
}

