import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { digestOf } from '../../../src/oci/digest.js';
import { manifestBlob, type Descriptor, type ManifestBlob } from '../../../src/oci/manifest.js';
import { MediaType } from '../../../src/oci/media-types.js';
import type { ImageDestination } from '../../../src/oci/transport.js';
import type { RegistryOptions } from '../../../src/oci/registry/options.js';

/** Fast retries so fault tests take milliseconds, not seconds. */
export const FAST_RETRY = { attempts: 5, baseDelayMs: 20, maxDelayMs: 200, totalBudgetMs: 3000 };

/** An empty registries.conf, so tests never depend on the host's /etc/containers. */
export function emptyRegistriesConf(): string {
  const dir = mkdtempSync(join(tmpdir(), 'basalt-test-regconf-'));
  const file = join(dir, 'registries.conf');
  writeFileSync(file, '');
  return file;
}

const EMPTY_CONF = emptyRegistriesConf();

/** Options for plain-http test registries, with a log collector. */
export function testOptions(extra: RegistryOptions = {}): RegistryOptions & { messages: string[] } {
  const messages: string[] = [];
  return { tlsVerify: false, retry: FAST_RETRY, log: (m: string) => messages.push(m), registriesConf: EMPTY_CONF, messages, ...extra } as RegistryOptions & { messages: string[] };
}

export interface TestImage {
  config: Buffer;
  layers: Buffer[];
  manifest: ManifestBlob;
  configDesc: Descriptor;
  layerDescs: Descriptor[];
}

export function makeImage(layerSizes: number[] = [1000, 3000]): TestImage {
  const layers = layerSizes.map((n) => randomBytes(n));
  const layerDescs = layers.map((l) => ({ mediaType: MediaType.OciLayerGzip, digest: digestOf(l), size: l.length }));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layerDescs.map((d) => d.digest) }, nonce: randomBytes(8).toString('hex') }));
  const configDesc = { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.length };
  const manifest = manifestBlob({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: layerDescs });
  return { config, layers, manifest, configDesc, layerDescs };
}

/** A stream that yields `data` in pieces (so chunk boundaries differ from the data's). */
export function streamOf(data: Buffer, piece = 65536): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    for (let i = 0; i < data.length; i += piece) yield data.subarray(i, i + piece);
  }
  return Readable.from(gen());
}

export async function pushImage(dest: ImageDestination, img: TestImage): Promise<void> {
  await dest.putBlob(streamOf(img.config), { mediaType: img.configDesc.mediaType, digest: img.configDesc.digest, size: img.configDesc.size });
  for (const [i, l] of img.layers.entries()) {
    const d = img.layerDescs[i] as Descriptor;
    await dest.putBlob(streamOf(l), { mediaType: d.mediaType, digest: d.digest, size: d.size });
  }
  await dest.putManifest(img.manifest, { top: true });
  await dest.commit();
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}
