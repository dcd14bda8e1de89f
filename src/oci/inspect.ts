import { parseManifest, parseConfig, type ImageConfig, type ParsedManifest } from './manifest.js';
import { readVerifiedBlob } from './blob.js';
import { readImage } from './image.js';
import type { Platform } from './manifest.js';
import type { ImageSource } from './transport.js';

/** What `basalt image inspect` prints, in skopeo inspect's shape (plus a Digest for every index). */
export interface InspectInfo {
  Name: string;
  Digest: string;
  RepoTags: string[];
  Created?: string;
  DockerVersion?: string;
  Labels: Record<string, string> | null;
  Architecture: string;
  Os: string;
  Variant?: string;
  Layers: string[];
  LayersData: { MIMEType: string; Digest: string; Size: number; Annotations: Record<string, string> | null }[];
  Env: string[] | null;
  Author?: string;
}

/** The top manifest exactly as served (`--raw`). */
export async function rawManifest(source: ImageSource): Promise<ParsedManifest> {
  const blob = await source.getManifest();
  return parseManifest(blob.bytes, blob.mediaType, source.name);
}

/** The config of the image for the platform, verified (`--config`). */
export async function rawConfig(source: ImageSource, platform?: Platform): Promise<{ bytes: Buffer; config: ImageConfig }> {
  const image = await readImage(source, platform ? { platform } : {});
  const bytes = image.raw?.configBytes ?? Buffer.from(JSON.stringify(image.config));
  return { bytes, config: parseConfig(bytes, `config of ${source.name}`) };
}

export async function inspectImage(source: ImageSource, options: { platform?: Platform; name?: string; tags?: string[] } = {}): Promise<InspectInfo> {
  const top = await rawManifest(source);
  const image = await readImage(source, options.platform ? { platform: options.platform } : {});
  const cfg = image.config;
  const info: InspectInfo = {
    Name: options.name ?? source.name,
    Digest: top.digest,
    RepoTags: options.tags ?? [],
    Labels: cfg.config?.Labels ?? null,
    Architecture: cfg.architecture,
    Os: cfg.os,
    Layers: image.layers.map((l) => l.descriptor.digest),
    LayersData: image.layers.map((l) => ({ MIMEType: l.descriptor.mediaType, Digest: l.descriptor.digest, Size: l.descriptor.size, Annotations: l.descriptor.annotations ?? null })),
    Env: cfg.config?.Env ?? null,
  };
  if (cfg.created) info.Created = cfg.created;
  if (typeof cfg.docker_version === 'string') info.DockerVersion = cfg.docker_version;
  if (cfg.variant) info.Variant = cfg.variant;
  if (cfg.author) info.Author = cfg.author;
  return info;
}

