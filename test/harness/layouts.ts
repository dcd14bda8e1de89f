import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PassThrough } from 'node:stream';
import { TarWriter } from '../../src/oci/layer/tar.js';
import { digestOf } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import type { Descriptor, Platform } from '../../src/oci/manifest.js';

/**
 * Writes OCI layouts by hand (no basalt code but the tar writer), so copy tests have inputs
 * that do not depend on the code under test: single images and multi-platform indexes.
 */
export type FileMap = Record<string, string>;

export async function tarOf(files: FileMap): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise((r) => out.on('end', r));
  const w = new TarWriter(out);
  for (const [path, content] of Object.entries(files)) {
    const body = Buffer.from(content);
    await w.add({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 1_700_000_000 }, body);
  }
  await w.finish();
  await done;
  return Buffer.concat(chunks);
}

async function putBlob(dir: string, data: Buffer): Promise<string> {
  const digest = digestOf(data);
  await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  await writeFile(join(dir, 'blobs/sha256', digest.slice(7)), data);
  return digest;
}

/** Writes one image's blobs and manifest; returns the manifest descriptor. */
export async function writeImageBlobs(dir: string, layers: FileMap[], platform: Platform = { os: 'linux', architecture: 'amd64' }): Promise<Descriptor> {
  const layerDescs: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const files of layers) {
    const tar = await tarOf(files);
    const gz = gzipSync(tar);
    diffIds.push(digestOf(tar));
    layerDescs.push({ mediaType: MediaType.OciLayerGzip, digest: await putBlob(dir, gz), size: gz.length });
  }
  const config = Buffer.from(JSON.stringify({ architecture: platform.architecture, os: platform.os, ...(platform.variant ? { variant: platform.variant } : {}), config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds }, history: layers.map(() => ({ created_by: 'test' })) }));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: await putBlob(dir, config), size: config.length }, layers: layerDescs }));
  return { mediaType: MediaType.OciManifest, digest: await putBlob(dir, manifest), size: manifest.length, platform };
}

async function writeIndex(dir: string, manifests: Descriptor[]): Promise<void> {
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
}

/** A layout with one image named `ref`. */
export async function makeImageLayout(dir: string, ref: string, layers: FileMap[]): Promise<Descriptor> {
  const { platform: _p, ...desc } = await writeImageBlobs(dir, layers);
  const named = { ...desc, annotations: { 'org.opencontainers.image.ref.name': ref } };
  await writeIndex(dir, [named]);
  return named;
}

/** A layout whose `ref` is a multi-platform index over the given platforms. */
export async function makeIndexLayout(dir: string, ref: string, platforms: Platform[]): Promise<Descriptor> {
  const children: Descriptor[] = [];
  for (const p of platforms) children.push(await writeImageBlobs(dir, [{ 'etc/platform': `${p.os}/${p.architecture}\n` }], p));
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: children }));
  const desc: Descriptor = { mediaType: MediaType.OciIndex, digest: await putBlob(dir, index), size: index.length, annotations: { 'org.opencontainers.image.ref.name': ref } };
  await writeIndex(dir, [desc]);
  return desc;
}
