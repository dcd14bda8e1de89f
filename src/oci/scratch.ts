import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestingStream } from './digest.js';
import { makeTempDir } from './fsutil.js';
import { layerMediaType, type Compression } from './media-types.js';
import { compressStream } from './layer/compression.js';
import { fileLayer, type Layer } from './image.js';

/**
 * A private temp directory for blobs basalt makes (new layers for append, flatten, pack).
 * Layers made here stay readable until `dispose()`.
 */
export class Scratch {
  private constructor(readonly dir: string) {}

  static async create(): Promise<Scratch> {
    return new Scratch(await makeTempDir('scratch'));
  }

  /** Turns an uncompressed layer tar stream into a compressed layer blob, hashing both sides in one pass. */
  async writeLayer(tar: Readable, compression: Compression, format: 'oci' | 'v2s2' = 'oci'): Promise<Layer> {
    const diff = new DigestingStream();
    const blob = new DigestingStream();
    const tmp = join(this.dir, `layer-${Date.now()}-${Math.random().toString(36).slice(2)}`);
    const stages: NodeJS.ReadWriteStream[] = [diff];
    if (compression !== 'none') stages.push(compressStream(compression));
    stages.push(blob);
    await pipeline([tar, ...stages, createWriteStream(tmp)] as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream]);
    const path = join(this.dir, blob.digest.replace(':', '-'));
    await rename(tmp, path);
    return fileLayer(path, { mediaType: layerMediaType(format, compression), digest: blob.digest, size: blob.size }, diff.digest);
  }

  async dispose(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
