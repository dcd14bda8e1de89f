/**
 * `oci-archive:FILE[:REF]` — a tar of an OCI image layout (what `skopeo copy … oci-archive:`
 * and `podman save --format oci-archive` write). Reading indexes the tar once and serves
 * blobs by random access; writing streams the tar into a temp file beside FILE as blobs arrive
 * and renames it over FILE on commit (the archive is replaced whole, as containers/image does).
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { BasaltError } from '../errors.js';
import { DigestingStream, VerifyingStream, digestOf, parseDigest, type Digest } from '../digest.js';
import { MediaType } from '../media-types.js';
import { encodeJson, type Descriptor, type ImageIndex, type ManifestBlob } from '../manifest.js';
import type { BlobInfo, ImageDestination, ImageSource, ProgressSink, Transport, TransportOptions } from '../transport.js';
import { REF_NAME_ANNOTATION, blobPath, chainStreams, openLayoutSource, parseLayoutReference, progressStream } from './oci-layout.js';
import { ArchiveWriter, IndexedArchive } from './tar-archive.js';

export class OciArchiveDestination implements ImageDestination {
  readonly supportedManifestTypes = undefined;
  readonly acceptsZstd = true;
  readonly maxParallelBlobs = 1;
  private readonly archive: ArchiveWriter;
  /** Blobs already in the archive, by digest, with their size. */
  private readonly written = new Map<Digest, number>();
  private top: Descriptor | undefined;

  constructor(
    readonly name: string,
    readonly file: string,
    readonly ref: string | undefined,
  ) {
    this.archive = new ArchiveWriter(file, name);
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    return this.written.get(desc.digest) === desc.size;
  }

  async putBlob(data: Readable, info: BlobInfo, progress?: ProgressSink): Promise<Descriptor> {
    const describe = (digest: Digest, size: number): Descriptor => ({ mediaType: info.mediaType, digest, size, ...(info.annotations ? { annotations: info.annotations } : {}) });
    if (info.digest !== undefined && this.written.has(info.digest)) {
      data.destroy();
      return describe(info.digest, this.written.get(info.digest) as number);
    }
    if (info.digest !== undefined && info.size !== undefined) {
      // Size known up front: stream straight into the tar, verifying as it goes.
      const what = `${this.name}: blob ${info.digest}`;
      const body = chainStreams(data, new VerifyingStream(info.digest, info.size, what), progressStream(progress));
      await this.archive.addFile(blobPath(info.digest, what), info.size, body);
      this.written.set(info.digest, info.size);
      return describe(info.digest, info.size);
    }
    // Size unknown (re-compressed layer): spool to learn size and digest, then add.
    const digester = new DigestingStream('sha256');
    const checks = info.digest !== undefined ? [new VerifyingStream(info.digest, info.size, `${this.name}: blob ${info.digest}`)] : [];
    const spool = await this.archive.spool(data, [...checks, digester, progressStream(progress)]);
    try {
      const digest = info.digest ?? digester.digest;
      if (!this.written.has(digest)) {
        await this.archive.addFile(blobPath(digest), digester.size, createReadStream(spool));
        this.written.set(digest, digester.size);
      }
      return describe(digest, digester.size);
    } finally {
      await this.archive.dropSpool(spool);
    }
  }

  async putManifest(manifest: ManifestBlob, options: { top: boolean }): Promise<void> {
    if (digestOf(manifest.bytes, parseDigest(manifest.digest).algorithm) !== manifest.digest)
      throw new BasaltError('integrity', `${this.name}: manifest bytes do not match ${manifest.digest}`);
    await this.putBlob(Readable.from([manifest.bytes]), { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length });
    if (options.top) this.top = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length };
  }

  async commit(): Promise<void> {
    if (!this.top) throw new Error(`${this.name}: commit without a top-level manifest (putManifest with top: true)`);
    const entry: Descriptor = { ...this.top };
    if (this.ref !== undefined) entry.annotations = { [REF_NAME_ANNOTATION]: this.ref };
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [entry] };
    const indexBytes = encodeJson(index);
    const layoutBytes = encodeJson({ imageLayoutVersion: '1.0.0' });
    await this.archive.addFile('index.json', indexBytes.length, indexBytes);
    await this.archive.addFile('oci-layout', layoutBytes.length, layoutBytes);
    await this.archive.commit();
  }

  abort(): Promise<void> {
    return this.archive.abort();
  }
}

/** Opens the image `ref` names inside an oci-archive file. */
export async function openOciArchiveSource(name: string, file: string, ref: string | undefined): Promise<ImageSource> {
  const archive = await IndexedArchive.open(file);
  try {
    return await openLayoutSource(name, archive, ref, () => archive.close());
  } catch (e) {
    await archive.close();
    throw e;
  }
}

export const ociArchiveTransport: Transport = {
  name: 'oci-archive',
  async openSource(reference: string, _options: TransportOptions): Promise<ImageSource> {
    const { dir: file, ref } = parseLayoutReference(reference, 'oci-archive');
    return openOciArchiveSource(`oci-archive:${reference}`, file, ref);
  },
  async openDestination(reference: string, _options: TransportOptions): Promise<ImageDestination> {
    const { dir: file, ref } = parseLayoutReference(reference, 'oci-archive');
    return new OciArchiveDestination(`oci-archive:${reference}`, file, ref);
  },
};
