import { openUncompressed, readImage, serializeImage, type Image } from '../oci/image.js';
import { openSource } from '../oci/transports/index.js';
import type { Platform } from '../oci/manifest.js';
import type { ImageSource, TransportOptions } from '../oci/transport.js';
import { commitLayer, layerRef, LAYER_REF_PREFIX } from './layer-commit.js';
import { mergeLayers } from './merge.js';
import { formatGVariantStringArray } from './gvariant-text.js';
import { listRefs, metadataKey, resolveRev } from './ostree-tool.js';
import { parseGVariantString } from './gvariant-text.js';
import { crashPoint } from './crash-points.js';
import { removeStaleTemp } from './stale-temp.js';
import { join } from 'node:path';

/** Merged image commits live under this prefix, one ref per image name. */
export const IMAGE_REF_PREFIX = 'basalt/image';

/** Commit metadata keys basalt writes on merged image commits (status reads them back). */
export const META = {
  manifestDigest: 'basalt.manifest-digest',
  configDigest: 'basalt.config-digest',
  imageReference: 'basalt.image-reference',
  created: 'basalt.created',
  layers: 'basalt.layers',
  /** ostree's own key: `ostree admin status` prints it as "Version". */
  version: 'version',
} as const;

export type ImportEvent =
  | { type: 'layer'; index: number; count: number; diffId: string; size: number; state: 'cached' | 'importing' | 'imported' }
  | { type: 'layer-bytes'; diffId: string; bytes: number }
  | { type: 'merge'; layers: number }
  | { type: 'committed'; commit: string; reused: boolean };

export interface ImportOptions {
  /** The name the image was read from, recorded in the commit (`docker://…`, `oci:DIR:TAG`). */
  imageName: string;
  /** The ref of the merged commit (default: derived from imageName). */
  ref?: string;
  onProgress?: (event: ImportEvent) => void;
}

export interface ImportResult {
  ref: string;
  commit: string;
  manifestDigest: string;
  version?: string;
  created?: string;
  layers: Array<{ diffId: string; ref: string; cached: boolean }>;
  /** Layers imported by this run (the rest came from the cache). */
  imported: number;
  /** Whether the merged commit for this manifest already existed. */
  mergeReused: boolean;
}

/** An image name as an ostree ref component: [A-Za-z0-9.-] kept, anything else as _XX. */
export function imageRef(imageName: string): string {
  const escaped = [...Buffer.from(imageName, 'utf8')].map((b) => (/[A-Za-z0-9.-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `_${b.toString(16).padStart(2, '0')}`)).join('');
  return `${IMAGE_REF_PREFIX}/${escaped}`;
}

export function imageVersion(image: Image): string | undefined {
  const labels = image.config.config?.Labels ?? {};
  return labels['org.opencontainers.image.version'] ?? labels.version;
}

/**
 * Imports an image into an ostree repository: every layer not already there becomes a commit
 * under its diff-id ref (the layer cache), then the layers are merged into one commit under
 * `options.ref` carrying the manifest digest, reference, version and creation time. Re-importing
 * a manifest whose merged commit exists does nothing.
 */
export async function importImage(repo: string, image: Image, options: ImportOptions): Promise<ImportResult> {
  const ref = options.ref ?? imageRef(options.imageName);
  const manifestDigest = serializeImage(image).manifest.digest;
  const configDigest = serializeImage(image).configDescriptor.digest;
  const version = imageVersion(image);
  const created = image.config.created;
  const base = { ref, manifestDigest, ...(version !== undefined ? { version } : {}), ...(created !== undefined ? { created } : {}) };

  // What an import killed part-way left behind (a pipe, a checked-out merge tree).
  await removeStaleTemp(join(repo, 'tmp'));
  const cachedLayers = await listRefs(repo, LAYER_REF_PREFIX);
  const layers: ImportResult['layers'] = [];
  let imported = 0;
  for (const [index, layer] of image.layers.entries()) {
    const lref = layerRef(layer.diffId);
    const event = { type: 'layer' as const, index, count: image.layers.length, diffId: layer.diffId, size: layer.descriptor.size };
    if (cachedLayers.has(lref)) {
      options.onProgress?.({ ...event, state: 'cached' });
      layers.push({ diffId: layer.diffId, ref: lref, cached: true });
      continue;
    }
    options.onProgress?.({ ...event, state: 'importing' });
    await commitLayer(repo, await openUncompressed(layer), layer.diffId, {
      what: `layer ${layer.diffId} of ${options.imageName}`,
      onBytes: (bytes) => {
        options.onProgress?.({ type: 'layer-bytes', diffId: layer.diffId, bytes });
        if (bytes > 0) void crashPoint('layer-download');
      },
    });
    cachedLayers.add(lref);
    imported++;
    options.onProgress?.({ ...event, state: 'imported' });
    layers.push({ diffId: layer.diffId, ref: lref, cached: false });
  }

  const existing = await resolveRev(repo, ref);
  if (existing !== undefined) {
    const digest = await metadataKey(repo, existing, META.manifestDigest);
    if (digest !== undefined && parseGVariantString(digest) === manifestDigest) {
      options.onProgress?.({ type: 'committed', commit: existing, reused: true });
      return { ...base, commit: existing, layers, imported, mergeReused: true };
    }
  }
  options.onProgress?.({ type: 'merge', layers: layers.length });
  const metadata: Record<string, string> = { [META.manifestDigest]: manifestDigest, [META.configDigest]: configDigest, [META.imageReference]: options.imageName };
  if (version !== undefined) metadata[META.version] = version;
  if (created !== undefined) metadata[META.created] = created;
  const createdSeconds = created !== undefined ? Date.parse(created) / 1000 : NaN;
  const merged = await mergeLayers(
    repo,
    layers.map((l) => l.ref),
    {
      ref,
      metadata,
      variantMetadata: { [META.layers]: formatGVariantStringArray(layers.map((l) => l.diffId)) },
      subject: `${options.imageName}@${manifestDigest}`,
      ...(Number.isFinite(createdSeconds) && createdSeconds >= 0 ? { timestamp: createdSeconds } : {}),
    },
  );
  options.onProgress?.({ type: 'committed', commit: merged.commit, reused: false });
  return { ...base, commit: merged.commit, layers, imported, mergeReused: false };
}

/** Refuses an image before anything is imported (the signature policy: trust/enforce.ts). */
export type SourceCheck = (source: ImageSource, imageName: string) => Promise<void>;

/** Opens `imageName` through its transport, reads it (for `platform`) and imports it. */
export async function importImageByName(
  repo: string,
  imageName: string,
  options: { transport?: TransportOptions; platform?: Platform; ref?: string; onProgress?: (e: ImportEvent) => void; checkSource?: SourceCheck } = {},
): Promise<ImportResult & { image: Image }> {
  const source = await openSource(imageName, options.transport ?? {});
  try {
    // The signature policy judges the very source the image is then read from, before any import.
    await options.checkSource?.(source, imageName);
    const image = await readImage(source, options.platform ? { platform: options.platform } : {});
    const result = await importImage(repo, image, { imageName, ...(options.ref ? { ref: options.ref } : {}), ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
    return { ...result, image };
  } finally {
    await source.close();
  }
}
