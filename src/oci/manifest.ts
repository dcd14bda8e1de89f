import { BasaltError } from './errors.js';
import { digestOf, parseDigest, type Digest } from './digest.js';
import { MediaType, isIndexType, isImageManifestType, layerCompression, ALL_MANIFEST_TYPES } from './media-types.js';

/** Manifests larger than this are refused (the limit containers/image and registries use). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  features?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  data?: string;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  [key: string]: unknown;
}

export interface HistoryEntry {
  created?: string;
  author?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The image configuration (OCI image-spec config.md; Docker's is a superset). */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  'os.version'?: string;
  variant?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
  [key: string]: unknown;
}

/** A manifest as bytes plus what it was served as. Bytes are kept so digests survive copies. */
export interface ManifestBlob {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

export type ParsedManifest =
  | { kind: 'image'; mediaType: string; digest: Digest; bytes: Buffer; manifest: ImageManifest }
  | { kind: 'index'; mediaType: string; digest: Digest; bytes: Buffer; manifest: ImageIndex };

function fail(what: string, reason: string): never {
  throw new BasaltError('invalid', `${what}: ${reason}`, { hint: 'the manifest is malformed; check the image source' });
}

function checkDescriptor(d: unknown, what: string): Descriptor {
  if (typeof d !== 'object' || d === null) fail(what, 'descriptor is not an object');
  const o = d as Record<string, unknown>;
  if (typeof o.mediaType !== 'string' || o.mediaType === '') fail(what, 'descriptor has no mediaType');
  if (typeof o.digest !== 'string') fail(what, 'descriptor has no digest');
  parseDigest(o.digest, `${what} digest`);
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) fail(what, 'descriptor size is not a non-negative integer');
  return o as unknown as Descriptor;
}

/**
 * Parses and validates manifest bytes. `declaredType` is what the transport said (Content-Type,
 * index.json descriptor); the document's own mediaType field wins when present and consistent.
 * `what` names the source in errors.
 */
export function parseManifest(bytes: Buffer, declaredType: string | undefined, what: string): ParsedManifest {
  if (bytes.length > MAX_MANIFEST_BYTES) fail(what, `manifest is ${bytes.length} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    fail(what, `manifest is not valid JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail(what, 'manifest is not a JSON object');
  const o = doc as Record<string, unknown>;
  const own = typeof o.mediaType === 'string' ? o.mediaType : undefined;
  const plainDeclared = declaredType?.split(';')[0]?.trim();
  let mediaType = own ?? (plainDeclared && plainDeclared !== 'application/json' && plainDeclared !== 'text/plain' ? plainDeclared : undefined);
  if (mediaType === undefined) {
    // OCI allows mediaType to be omitted; infer from the shape as containers/image does.
    if (Array.isArray(o.manifests)) mediaType = MediaType.OciIndex;
    else if (typeof o.config === 'object' && Array.isArray(o.layers)) mediaType = MediaType.OciManifest;
    else if (o.schemaVersion === 1) mediaType = MediaType.DockerSchema1Signed;
    else fail(what, 'cannot tell what kind of manifest this is (no mediaType, no config/layers, no manifests)');
  }
  if (mediaType === MediaType.DockerSchema1 || mediaType === MediaType.DockerSchema1Signed)
    throw new BasaltError('unsupported', `${what}: Docker schema 1 manifests are deprecated and not supported`, { hint: 'push the image again with a current tool (schema 2 or OCI)' });
  if (!ALL_MANIFEST_TYPES.includes(mediaType))
    throw new BasaltError('unsupported', `${what}: unknown manifest media type "${mediaType}"`, { hint: `basalt reads ${ALL_MANIFEST_TYPES.join(', ')}` });
  if (own && plainDeclared && ALL_MANIFEST_TYPES.includes(plainDeclared) && own !== plainDeclared)
    fail(what, `manifest says mediaType ${own} but was served as ${plainDeclared}`);
  if (o.schemaVersion !== 2) fail(what, `schemaVersion is ${JSON.stringify(o.schemaVersion)}, expected 2`);
  const digest = digestOf(bytes);
  if (isIndexType(mediaType)) {
    if (!Array.isArray(o.manifests)) fail(what, 'index has no manifests array');
    (o.manifests as unknown[]).forEach((m, i) => checkDescriptor(m, `${what} manifests[${i}]`));
    if (o.subject !== undefined) checkDescriptor(o.subject, `${what} subject`);
    return { kind: 'index', mediaType, digest, bytes, manifest: o as unknown as ImageIndex };
  }
  if (!isImageManifestType(mediaType)) fail(what, `unexpected media type ${mediaType}`);
  checkDescriptor(o.config, `${what} config`);
  if (!Array.isArray(o.layers)) fail(what, 'manifest has no layers array');
  (o.layers as unknown[]).forEach((l, i) => checkDescriptor(l, `${what} layers[${i}]`));
  if (o.subject !== undefined) checkDescriptor(o.subject, `${what} subject`);
  if (mediaType === MediaType.DockerManifest) {
    for (const [i, l] of (o.layers as Descriptor[]).entries())
      if (!l.mediaType.startsWith('application/vnd.docker.') && layerCompression(l.mediaType) === undefined)
        fail(what, `layers[${i}] has media type ${l.mediaType}, not valid in a Docker v2s2 manifest`);
  }
  return { kind: 'image', mediaType, digest, bytes, manifest: o as unknown as ImageManifest };
}

/** Parses an image configuration blob. */
export function parseConfig(bytes: Buffer, what: string): ImageConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new BasaltError('invalid', `${what}: image config is not valid JSON (${(e as Error).message})`);
  }
  const o = doc as Partial<ImageConfig> | null;
  if (typeof o !== 'object' || o === null) throw new BasaltError('invalid', `${what}: image config is not a JSON object`);
  if (!o.rootfs || !Array.isArray(o.rootfs.diff_ids)) throw new BasaltError('invalid', `${what}: image config has no rootfs.diff_ids`);
  for (const d of o.rootfs.diff_ids) parseDigest(d, `${what} diff_id`);
  return o as ImageConfig;
}

/** Canonical JSON bytes for a manifest or config basalt writes (stable key order as given, no spaces). */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

export function manifestBlob(value: ImageManifest | ImageIndex): ManifestBlob {
  const bytes = encodeJson(value);
  const mediaType = value.mediaType ?? (('manifests' in value) ? MediaType.OciIndex : MediaType.OciManifest);
  return { bytes, mediaType, digest: digestOf(bytes) };
}
