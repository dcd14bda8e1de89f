import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { BasaltError } from '../oci/errors.js';
import { makeTempDir } from '../oci/fsutil.js';
import { writeImage, type Image } from '../oci/image.js';
import { appendLayers, emptyConfig, mutateConfig } from '../oci/mutate.js';
import { MediaType, type Compression } from '../oci/media-types.js';
import { layerFromPath } from '../oci/filesystem.js';
import { Scratch } from '../oci/scratch.js';
import { applyLayer } from '../oci/layer/apply.js';
import { packDirectory } from '../oci/layer/pack.js';
import { isRoot } from '../oci/layer/system-tools.js';
import { openDestination } from '../oci/transports/index.js';
import type { TransportOptions } from '../oci/transport.js';
import { BASE_PACKAGES, DEFAULT_BASE_NAME, DEFAULT_SUITE } from './base-packages.js';
import { bootstrap } from './bootstrap.js';
import { configureRoot, locateBasaltFiles, type BasaltFiles } from './configure.js';
import { phase, type BuildEventSink } from './events.js';
import { buildInitramfs, kernelVersionOf } from './initramfs.js';
import { applyBootableLayout } from './layout.js';
import { rechunkTree } from './rechunk.js';

/**
 * `basalt base build`: a bootable Debian image from packages. mmdebstrap (cached) → the
 * tree unpacked in a work directory → networking, SSH host keys at first boot and basalt
 * → dracut initramfs → bootable layout and per-machine state removed → packed (one layer,
 * or N content-stable layers) → basalt's local store.
 */
export interface BaseBuildOptions {
  suite?: string;
  /** Packages added to the base set. */
  packages?: readonly string[];
  /** Store name (default localhost/basalt/debian:bookworm). */
  name?: string;
  /** Split into this many layers (default: one layer). */
  rechunk?: number;
  compression?: Compression;
  /** Where the mmdebstrap tarball cache lives (default /var/cache/basalt/base). */
  cacheDir?: string;
  /** Where the tree is assembled (default: a temp dir, removed afterwards). */
  workDir?: string;
  sourceDateEpoch?: number;
  sources?: string[];
  /** The basalt files installed into the image (default: the running basalt's). */
  basaltFiles?: BasaltFiles;
  transport?: TransportOptions;
  onEvent?: BuildEventSink;
  signal?: AbortSignal;
}

export interface BaseBuildResult {
  name: string;
  digest: string;
  kernel: string;
  layers: number;
  /** Compressed bytes of all layers. */
  size: number;
  bootstrapCached: boolean;
}

export const DEFAULT_CACHE_DIR = '/var/cache/basalt/base';

const BOOTC_LABELS = { 'containers.bootc': '1', 'ostree.bootable': 'true' };

export async function buildBaseImage(options: BaseBuildOptions = {}): Promise<BaseBuildResult> {
  if (!isRoot()) throw new BasaltError('denied', 'basalt base build runs mmdebstrap and systemd-nspawn, which need root', { hint: 'run it as root (sudo basalt base build)' });
  const suite = options.suite ?? DEFAULT_SUITE;
  const name = options.name ?? (suite === DEFAULT_SUITE ? DEFAULT_BASE_NAME : `localhost/basalt/debian:${suite}`);
  const packages = [...new Set([...BASE_PACKAGES, ...(options.packages ?? [])])];
  const epoch = options.sourceDateEpoch;
  const sink = options.onEvent;
  const basaltFiles = options.basaltFiles ?? (await locateBasaltFiles());
  const boot = await phase(sink, 'bootstrap', () =>
    bootstrap({ suite, packages, architecture: 'amd64', cacheDir: options.cacheDir ?? DEFAULT_CACHE_DIR, ...(epoch !== undefined ? { sourceDateEpoch: epoch } : {}), ...(options.sources ? { sources: options.sources } : {}), ...(sink ? { onEvent: sink } : {}), ...(options.signal ? { signal: options.signal } : {}) }),
  (b) => (b.cached ? 'cached' : 'built'));
  const work = await makeTempDir('base', options.workDir);
  const root = join(work, 'root');
  const scratch = await Scratch.create();
  try {
    await phase(sink, 'extract', async () => {
      await applyLayer(createReadStream(boot.tarball, { highWaterMark: 1 << 20 }), root, { what: `mmdebstrap tarball ${boot.tarball}` });
    });
    await phase(sink, 'configure', () => configureRoot(root, basaltFiles));
    const kernel = await kernelVersionOf(root);
    await phase(sink, 'initramfs', () => buildInitramfs(root, kernel, { ...(epoch !== undefined ? { sourceDateEpoch: epoch } : {}), ...(options.signal ? { signal: options.signal } : {}) }), () => kernel);
    await phase(sink, 'layout', () => applyBootableLayout(root, kernel));
    const compression = options.compression ?? 'gzip';
    let image = await phase(sink, 'pack', () => packTree(root, scratch, compression, options.rechunk, epoch), (i) => `${i.layers.length} layer${i.layers.length === 1 ? '' : 's'}`);
    image = mutateConfig(image, {
      labels: { ...BOOTC_LABELS, 'org.opencontainers.image.title': `basalt Debian ${suite} base`, 'dev.basalt.kernel': kernel },
      cmd: ['/sbin/init'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    });
    const manifest = await phase(sink, 'store', async () => writeImage(image, await openDestination(name, options.transport ?? {})), (m) => m.digest);
    return { name, digest: manifest.digest, kernel, layers: image.layers.length, size: image.layers.reduce((n, l) => n + l.descriptor.size, 0), bootstrapCached: boot.cached };
  } finally {
    await scratch.dispose();
    await rm(work, { recursive: true, force: true });
  }
}

/** The tree as one layer, or rechunked; file times clamped to SOURCE_DATE_EPOCH. */
async function packTree(root: string, scratch: Scratch, compression: Compression, rechunk: number | undefined, epoch: number | undefined): Promise<Image> {
  const created = new Date((epoch ?? Math.floor(Date.now() / 1000)) * 1000).toISOString();
  const base: Image = { manifestType: MediaType.OciManifest, config: emptyConfig({ os: 'linux', architecture: 'amd64' }, created), layers: [] };
  if (rechunk === undefined || rechunk <= 1) {
    const layer = await layerFromPath(scratch, root, { compression, ...(epoch !== undefined ? { sourceDateEpoch: epoch } : {}) });
    return appendLayers(base, [layer], { created, created_by: 'basalt base build' });
  }
  const open = async (): Promise<Readable> => {
    const tar = new PassThrough({ highWaterMark: 1 << 20 });
    packDirectory(root, tar, epoch !== undefined ? { sourceDateEpoch: epoch } : {}).catch((e: unknown) => tar.destroy(e as Error));
    return tar;
  };
  const chunks = await rechunkTree(open, scratch, { layers: rechunk, compression }, root);
  let image = base;
  for (const c of chunks) image = appendLayers(image, [c.layer], { created, created_by: `basalt base build --rechunk: ${c.description}`, ...(c.packages.length > 1 ? { comment: c.packages.join(' ') } : {}) });
  return image;
}
