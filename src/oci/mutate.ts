import { BasaltError } from './errors.js';
import type { ContainerConfig, HistoryEntry, ImageConfig } from './manifest.js';
import { MediaType } from './media-types.js';
import type { Image, Layer } from './image.js';

/**
 * Pure image mutations in the manner of go-containerregistry's mutate package: each returns
 * a new Image and never touches its input.
 */
export interface ConfigChanges {
  /** Labels to set; a null value removes the label. */
  labels?: Record<string, string | null>;
  /** Manifest annotations to set; a null value removes it (OCI manifests only). */
  annotations?: Record<string, string | null>;
  /** `KEY=VALUE` sets, `KEY` alone (or `KEY-`) removes. */
  env?: string[];
  entrypoint?: string[] | null;
  cmd?: string[] | null;
  user?: string;
  workdir?: string;
  exposedPorts?: string[];
  stopSignal?: string;
  author?: string;
  /** RFC 3339 time for `created`. */
  created?: string;
}

function cloneConfig(config: ImageConfig): ImageConfig {
  return JSON.parse(JSON.stringify(config)) as ImageConfig;
}

function applyEnv(current: string[], changes: string[]): string[] {
  const env = [...current];
  for (const change of changes) {
    const eq = change.indexOf('=');
    const key = eq >= 0 ? change.slice(0, eq) : change.replace(/-$/, '');
    if (key === '') throw new BasaltError('usage', `environment change "${change}" has no variable name`, { hint: 'write KEY=VALUE to set or KEY- to remove' });
    const at = env.findIndex((e) => e === key || e.startsWith(`${key}=`));
    if (eq < 0) {
      if (at >= 0) env.splice(at, 1);
    } else if (at >= 0) env[at] = change;
    else env.push(change);
  }
  return env;
}

export function mutateConfig(image: Image, changes: ConfigChanges): Image {
  const config = cloneConfig(image.config);
  const c: ContainerConfig = config.config ?? (config.config = {});
  if (changes.labels) {
    const labels = { ...(c.Labels ?? {}) };
    for (const [k, v] of Object.entries(changes.labels)) {
      if (v === null) delete labels[k];
      else labels[k] = v;
    }
    c.Labels = labels;
  }
  if (changes.env) c.Env = applyEnv(c.Env ?? [], changes.env);
  if (changes.entrypoint !== undefined) c.Entrypoint = changes.entrypoint;
  if (changes.cmd !== undefined) c.Cmd = changes.cmd;
  if (changes.user !== undefined) c.User = changes.user;
  if (changes.workdir !== undefined) c.WorkingDir = changes.workdir;
  if (changes.stopSignal !== undefined) c.StopSignal = changes.stopSignal;
  if (changes.exposedPorts) {
    const ports = { ...(c.ExposedPorts ?? {}) };
    for (const p of changes.exposedPorts) ports[p.includes('/') ? p : `${p}/tcp`] = {};
    c.ExposedPorts = ports;
  }
  if (changes.author !== undefined) config.author = changes.author;
  if (changes.created !== undefined) config.created = changes.created;
  let annotations = image.annotations;
  if (changes.annotations) {
    if (image.manifestType !== MediaType.OciManifest)
      throw new BasaltError('usage', 'Docker v2s2 manifests have no annotations', { hint: 'convert the image first with `basalt image copy --format oci`' });
    const next = { ...(annotations ?? {}) };
    for (const [k, v] of Object.entries(changes.annotations)) {
      if (v === null) delete next[k];
      else next[k] = v;
    }
    annotations = next;
  }
  return withoutRaw({ ...image, config, ...(annotations ? { annotations } : {}) });
}

/** Appends layers, recording a history entry for each. */
export function appendLayers(image: Image, layers: Layer[], history: HistoryEntry = {}): Image {
  const config = cloneConfig(image.config);
  config.rootfs = { type: 'layers', diff_ids: [...config.rootfs.diff_ids, ...layers.map((l) => l.diffId)] };
  config.history = [...(config.history ?? []), ...layers.map(() => ({ ...history }))];
  return withoutRaw({ ...image, config, layers: [...image.layers, ...layers] });
}

/** Replaces all layers by one (flatten): history collapses to one entry. */
export function replaceLayers(image: Image, layers: Layer[], history: HistoryEntry): Image {
  const config = cloneConfig(image.config);
  config.rootfs = { type: 'layers', diff_ids: layers.map((l) => l.diffId) };
  config.history = layers.map(() => ({ ...history }));
  return withoutRaw({ ...image, config, layers });
}

function withoutRaw(image: Image): Image {
  const { raw: _raw, ...rest } = image;
  return rest;
}

/** A new empty image config for `pack`. */
export function emptyConfig(platform: { os: string; architecture: string; variant?: string }, created?: string): ImageConfig {
  const config: ImageConfig = { architecture: platform.architecture, os: platform.os, config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
  if (platform.variant) config.variant = platform.variant;
  if (created) config.created = created;
  return config;
}
