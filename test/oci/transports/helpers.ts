import { after } from 'node:test';
import { run } from '../../harness/tools.js';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { digestOf } from '../../../src/oci/digest.js';
import { MediaType } from '../../../src/oci/media-types.js';
import { parseManifest, type Descriptor, type ManifestBlob } from '../../../src/oci/manifest.js';
import type { BlobInfo, ImageDestination, ImageSource } from '../../../src/oci/transport.js';
import { tarOf } from '../../harness/layouts.js';
import { TarWriter } from '../../../src/oci/layer/tar.js';
import { PassThrough } from 'node:stream';

/**
 * A minimal copy between transports for these tests (the real engine is src/oci/copy.ts):
 * every blob as-is, verified by the destination. `hideDigests` offers layers without digest
 * and size, as a re-compressing copy does, to exercise the destinations' spooling paths.
 */
export async function copyLocal(src: ImageSource, dst: ImageDestination, options: { hideDigests?: boolean } = {}): Promise<ManifestBlob> {
  try {
    const top = await src.getManifest();
    await copyManifest(src, dst, top, true, options.hideDigests ?? false);
    await dst.commit();
    return top;
  } catch (e) {
    await dst.abort();
    throw e;
  } finally {
    await src.close();
  }
}

async function copyManifest(src: ImageSource, dst: ImageDestination, blob: ManifestBlob, top: boolean, hide: boolean): Promise<void> {
  const parsed = parseManifest(blob.bytes, blob.mediaType, src.name);
  if (parsed.kind === 'index') {
    for (const child of parsed.manifest.manifests) await copyManifest(src, dst, await src.getManifest(child.digest), false, hide);
    await dst.putManifest(blob, { top });
    return;
  }
  const m = parsed.manifest;
  const stored: Descriptor[] = [];
  for (const [i, d] of [m.config, ...m.layers].entries()) {
    if (await dst.hasBlob(d)) {
      stored.push(d);
      continue;
    }
    const info: BlobInfo = hide && i > 0 ? { mediaType: d.mediaType } : { mediaType: d.mediaType, digest: d.digest, size: d.size };
    stored.push(await dst.putBlob(await src.getBlob(d), info));
  }
  if (!hide) {
    await dst.putManifest(blob, { top });
    return;
  }
  // As a re-compressing copy does: the manifest names the layers as the destination stored them.
  const bytes = Buffer.from(JSON.stringify({ ...m, layers: stored.slice(1).map((d) => ({ mediaType: d.mediaType, digest: d.digest, size: d.size })) }));
  await dst.putManifest({ bytes, mediaType: blob.mediaType, digest: digestOf(bytes) }, { top });
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** An in-memory image source, for feeding destinations exactly the bytes a test wants. */
export class MemorySource implements ImageSource {
  readonly name = 'memory:test';
  constructor(
    private readonly top: ManifestBlob,
    private readonly blobs: Map<string, Buffer>,
  ) {}
  async getManifest(digest?: string): Promise<ManifestBlob> {
    if (digest === undefined || digest === this.top.digest) return this.top;
    const b = this.blobs.get(digest);
    if (!b) throw new Error(`no manifest ${digest}`);
    return { bytes: b, digest, mediaType: parseManifest(b, undefined, 'memory').mediaType };
  }
  async getBlob(desc: Descriptor): Promise<Readable> {
    const b = this.blobs.get(desc.digest);
    if (!b) throw new Error(`no blob ${desc.digest}`);
    return Readable.from([b]);
  }
  async close(): Promise<void> {}
}

/** A tar with /bin/busybox (static) and its applets as symlinks, plus `files`. */
export async function busyboxTar(files: Record<string, string>): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise((r) => out.on('end', r));
  const w = new TarWriter(out);
  const bb = readFileSync('/bin/busybox');
  const base = { uid: 0, gid: 0, mtime: 1_700_000_000 };
  await w.add({ ...base, path: 'bin', type: 'directory', mode: 0o755, size: 0 });
  await w.add({ ...base, path: 'bin/busybox', type: 'file', mode: 0o755, size: bb.length }, bb);
  for (const applet of ['sh', 'cat', 'echo']) await w.add({ ...base, path: `bin/${applet}`, type: 'symlink', mode: 0o777, size: 0, linkname: 'busybox' });
  for (const [path, content] of Object.entries(files)) {
    const body = Buffer.from(content);
    await w.add({ ...base, path, type: 'file', mode: 0o644, size: body.length }, body);
  }
  await w.finish();
  await done;
  return Buffer.concat(chunks);
}

export interface BuiltImage {
  source: MemorySource;
  manifest: ManifestBlob;
  config: Descriptor;
  layers: Descriptor[];
  diffIds: string[];
}

/**
 * An OCI image in memory. `layers` are tar contents; `compress` picks the stored form.
 * With `busybox`, the first layer also carries a static busybox, so `podman run` works.
 */
export async function buildImage(layers: Record<string, string>[], options: { compress?: 'gzip' | 'none'; busybox?: boolean; cmd?: string[] } = {}): Promise<BuiltImage> {
  const blobs = new Map<string, Buffer>();
  const layerDescs: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const [i, files] of layers.entries()) {
    const tar = options.busybox && i === 0 ? await busyboxTar(files) : await tarOf(files);
    diffIds.push(digestOf(tar));
    const stored = options.compress === 'none' ? tar : gzipSync(tar);
    const desc = { mediaType: options.compress === 'none' ? MediaType.OciLayer : MediaType.OciLayerGzip, digest: digestOf(stored), size: stored.length };
    blobs.set(desc.digest, stored);
    layerDescs.push(desc);
  }
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: options.cmd ?? ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds }, history: layers.map(() => ({ created_by: 'basalt test' })) }));
  const config = { mediaType: MediaType.OciConfig, digest: digestOf(configBytes), size: configBytes.length };
  blobs.set(config.digest, configBytes);
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: layerDescs }));
  const manifest = { bytes, mediaType: MediaType.OciManifest, digest: digestOf(bytes) };
  return { source: new MemorySource(manifest, blobs), manifest, config, layers: layerDescs, diffIds };
}

/** A unique suffix so parallel test files never share podman names or paths. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A list of podman image names the calling test file creates; they are removed after it. */
export function podmanImagesRemovedAfter(): string[] {
  const names: string[] = [];
  after(() => {
    for (const n of names) {
      try {
        run('podman', ['rmi', '-f', n]);
      } catch {
        // already gone
      }
    }
  });
  return names;
}
