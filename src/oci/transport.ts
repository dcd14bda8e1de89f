import type { Readable } from 'node:stream';
import type { Descriptor, ManifestBlob } from './manifest.js';

/**
 * The two sides every transport implements (modelled on containers/image's ImageSource and
 * ImageDestination). Copy, inspect, mutate and the rest are written once against these.
 *
 * A source serves manifests and raw blob bytes; it does not verify them — callers wrap blob
 * streams in a VerifyingStream. A destination makes nothing visible under a name until
 * `commit()`; `abort()` removes whatever it wrote.
 */
export interface ImageSource {
  /** The transport-qualified name, for messages: `docker://host/repo:tag`, `oci:dir:ref`. */
  readonly name: string;
  /** The manifest (image or index) the reference names, or, given a digest, that manifest. */
  getManifest(digest?: string): Promise<ManifestBlob>;
  /** A blob's raw (possibly compressed) bytes from `offset` on. */
  getBlob(desc: Descriptor, options?: BlobReadOptions): Promise<Readable>;
  /** Where a registry source lives, so a registry destination can try a cross-repository mount. */
  readonly location?: { registry: string; repository: string };
  close(): Promise<void>;
}

export interface BlobReadOptions {
  offset?: number;
  signal?: AbortSignal;
}

/** What a destination wants to know before a blob is written. */
export interface BlobInfo {
  mediaType: string;
  /** Known for blobs copied as-is; unknown when the copy re-compresses. */
  digest?: string;
  size?: number;
  annotations?: Record<string, string>;
}

export interface ProgressSink {
  /** Called with the number of new bytes written. */
  (bytes: number): void;
}

export interface ImageDestination {
  readonly name: string;
  /** Manifest media types the destination can store, preferred first; undefined means any. */
  readonly supportedManifestTypes?: readonly string[];
  /** Whether it can hold zstd layers (Docker archives and v2s2 cannot). */
  readonly acceptsZstd: boolean;
  /** How many blobs may be written at once (archives: 1). */
  readonly maxParallelBlobs: number;
  /**
   * Whether the blob is already present (then it is not written again). A registry may mount
   * it from `from` (same registry) and answer true.
   */
  hasBlob(desc: Descriptor, from?: { registry: string; repository: string }): Promise<boolean>;
  /**
   * Writes a blob. When info.digest/size are given the data is verified against them and the
   * write fails (leaving nothing) on mismatch; otherwise they are computed. Returns the stored
   * blob's descriptor.
   */
  putBlob(data: Readable, info: BlobInfo, progress?: ProgressSink): Promise<Descriptor>;
  /**
   * Stores a manifest. Child manifests of an index are stored by digest; the one with
   * `top: true` is what the destination reference names, stored last.
   */
  putManifest(manifest: ManifestBlob, options: { top: boolean }): Promise<void>;
  /** Makes the image visible under the destination's name. */
  commit(): Promise<void>;
  /** Removes anything written that is not visible; safe to call after a failure. */
  abort(): Promise<void>;
}

/** Options shared by all transports; each uses what applies to it. */
export interface TransportOptions {
  /** Registry: TLS verification (undefined: from registries.conf, default on). */
  tlsVerify?: boolean;
  /** Registry: directory of *.crt (CA), *.cert + *.key (client) files, as containers' certs.d. */
  certDir?: string;
  /**
   * Registry: upload blobs in PATCH chunks of this many bytes (resumable, for registries or
   * proxies that limit request sizes); default one streamed request per blob.
   */
  chunkSize?: number;
  /** Registry: explicit `user:password`. */
  creds?: string;
  /** Registry: auth file path (containers auth.json format). */
  authFile?: string;
  /** registries.conf path override (tests, --registries-conf). */
  registriesConf?: string;
  /** User-Agent and similar. */
  userAgent?: string;
  /** Local store root for `basalt:` names and defaults. */
  storeRoot?: string;
  signal?: AbortSignal;
  /** Called for human-readable events (retry notices); the CLI prints them when verbose. */
  log?: (message: string) => void;
}

/** A transport knows how to open both ends for names with its prefix. */
export interface Transport {
  /** `docker`, `oci`, `oci-archive`, `docker-archive`, `containers-storage`. */
  readonly name: string;
  openSource(reference: string, options: TransportOptions): Promise<ImageSource>;
  openDestination(reference: string, options: TransportOptions): Promise<ImageDestination>;
}
