import { PassThrough, type Readable } from 'node:stream';
import { BasaltError } from '../oci/errors.js';
import { digestOf } from '../oci/digest.js';
import type { Layer } from '../oci/image.js';
import type { Compression } from '../oci/media-types.js';
import type { Scratch } from '../oci/scratch.js';
import { readTar, TarWriter, type TarHeader } from '../oci/layer/tar.js';
import { isDpkgList, ownersFromLists, packageOfList } from './dpkg-owners.js';

/**
 * Splits one root filesystem tar into N content-stable layers, as rpm-ostree's chunking
 * does: files are grouped by the Debian package that owns them; the largest packages get
 * a layer each, the others are spread over hash buckets by package name (so a package
 * stays in the same layer from one build to the next), and files no package owns (the
 * initramfs, basalt, generated configuration) go to the last layer. An update then
 * changes only the layers whose packages changed. Directories are written into each layer
 * that holds something below them, just before their first child, so every layer is a
 * valid tar on its own and none depends on another.
 */
export interface RechunkOptions {
  layers: number;
  compression: Compression;
  format?: 'oci' | 'v2s2';
}

export interface Chunk {
  layer: Layer;
  /** What it holds: one package, a bucket of packages, or the unpackaged files. */
  description: string;
  packages: string[];
  entries: number;
}

const UNOWNED = '';

interface Survey {
  owners: Map<string, string>;
  packageBytes: Map<string, number>;
}

/** Pass one: the dpkg lists and the size of every file. */
async function survey(tar: Readable, what: string): Promise<Survey> {
  const lists = new Map<string, string>();
  const topLinks = new Map<string, string>();
  const sizes = new Map<string, number>();
  for await (const entry of readTar(tar, what)) {
    const path = entry.path.replace(/^\.?\/+/, '');
    if (entry.type === 'file') sizes.set(path, entry.size);
    if (entry.type === 'symlink' && !path.includes('/') && entry.linkname && !entry.linkname.startsWith('/')) topLinks.set(path, entry.linkname.replace(/\/+$/, ''));
    if (entry.type === 'file' && isDpkgList(path)) {
      const chunks: Buffer[] = [];
      for await (const c of entry.body) chunks.push(c as Buffer);
      const pkg = packageOfList(path);
      lists.set(pkg, (lists.get(pkg) ?? '') + Buffer.concat(chunks).toString('utf8'));
    }
  }
  const owners = ownersFromLists(lists, topLinks);
  const packageBytes = new Map<string, number>([...lists.keys()].map((p) => [p, 0]));
  for (const [path, size] of sizes) {
    const pkg = owners.get(path);
    if (pkg !== undefined) packageBytes.set(pkg, (packageBytes.get(pkg) ?? 0) + size);
  }
  return { owners, packageBytes };
}

function bucketOf(pkg: string, buckets: number): number {
  return parseInt(digestOf(pkg).slice('sha256:'.length, 'sha256:'.length + 8), 16) % buckets;
}

interface Plan {
  /** Package -> layer index. */
  layerOf: Map<string, number>;
  descriptions: string[];
  packages: string[][];
}

/** Which layer each package goes to: largest packages alone, the rest by hash, unowned last. */
export function planChunks(packageBytes: ReadonlyMap<string, number>, layers: number): Plan {
  if (!Number.isInteger(layers) || layers < 2) throw new BasaltError('usage', `--rechunk ${layers}: needs at least 2 layers`, { hint: 'give a whole number of layers, 2 or more' });
  const byPackages = layers - 1;
  const buckets = Math.max(1, Math.floor(byPackages / 2));
  const own = byPackages - buckets;
  const bySize = [...packageBytes].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([p]) => p);
  const alone = bySize.slice(0, own);
  const layerOf = new Map<string, number>();
  const descriptions: string[] = [];
  const packages: string[][] = [];
  for (const [i, p] of alone.entries()) {
    layerOf.set(p, i);
    descriptions.push(`package ${p}`);
    packages.push([p]);
  }
  for (let b = 0; b < buckets; b++) {
    descriptions.push(`packages by name hash, bucket ${b + 1} of ${buckets}`);
    packages.push([]);
  }
  for (const p of [...packageBytes.keys()].sort()) {
    if (layerOf.has(p)) continue;
    const index = alone.length + bucketOf(p, buckets);
    layerOf.set(p, index);
    (packages[index] as string[]).push(p);
  }
  descriptions.push('files no package owns');
  packages.push([]);
  layerOf.set(UNOWNED, descriptions.length - 1);
  return { layerOf, descriptions, packages };
}

interface Output {
  writer: TarWriter;
  written: Promise<Layer>;
  /** Directories already written into this layer. */
  dirs: Set<string>;
  entries: number;
}

/**
 * Rechunks the tree `open` streams (an uncompressed tar, read twice). Layers that end up
 * empty are left out; the order is the plan's, which depends only on the packages.
 */
export async function rechunkTree(open: () => Promise<Readable>, scratch: Scratch, options: RechunkOptions, what = 'root filesystem'): Promise<Chunk[]> {
  const { owners, packageBytes } = await survey(await open(), what);
  const plan = planChunks(packageBytes, options.layers);
  const outputs: Output[] = plan.descriptions.map(() => {
    const stream = new PassThrough({ highWaterMark: 1 << 20 });
    const written = scratch.writeLayer(stream, options.compression, options.format ?? 'oci');
    written.catch(() => undefined); // awaited below; a failure surfaces there
    return { writer: new TarWriter(stream), written, dirs: new Set<string>(), entries: 0 };
  });
  const dirHeaders = new Map<string, TarHeader>();
  const layerOfPath = new Map<string, number>();
  const ownerLayer = (path: string): number => plan.layerOf.get(owners.get(path) ?? UNOWNED) as number;

  const writeAncestors = async (out: Output, path: string): Promise<void> => {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (out.dirs.has(dir)) continue;
      const header = dirHeaders.get(dir);
      if (header) {
        await out.writer.add(header);
        out.entries++;
      }
      out.dirs.add(dir);
    }
  };

  try {
    const emptyDirs = new Set<string>();
    for await (const entry of readTar(await open(), what)) {
      const path = entry.path.replace(/^\.?\/+/, '');
      const { body: _body, dataOffset: _offset, ...header } = entry;
      const h: TarHeader = { ...header, path };
      if (entry.type === 'directory') {
        dirHeaders.set(path, h);
        emptyDirs.add(path);
        continue;
      }
      // Every ancestor of a written entry is written with it.
      for (let at = path.lastIndexOf('/'); at > 0; at = path.lastIndexOf('/', at - 1)) emptyDirs.delete(path.slice(0, at));
      const index = entry.type === 'hardlink' ? (layerOfPath.get((entry.linkname ?? '').replace(/^\.?\/+/, '')) ?? ownerLayer(path)) : ownerLayer(path);
      const out = outputs[index] as Output;
      await writeAncestors(out, path);
      await out.writer.add(h, entry.type === 'file' ? entry.body : undefined);
      out.entries++;
      if (entry.type === 'file') layerOfPath.set(path, index);
    }
    // Directories with nothing below them go where their owner is, after the rest is known.
    for (const dir of [...dirHeaders.keys()]) {
      if (!emptyDirs.has(dir)) continue;
      const out = outputs[ownerLayer(dir)] as Output;
      if (out.dirs.has(dir)) continue;
      await writeAncestors(out, dir);
      await out.writer.add(dirHeaders.get(dir) as TarHeader);
      out.dirs.add(dir);
      out.entries++;
    }
    for (const out of outputs) await out.writer.finish();
    const chunks: Chunk[] = [];
    for (const [i, out] of outputs.entries()) {
      const layer = await out.written;
      if (out.entries > 0) chunks.push({ layer, description: plan.descriptions[i] as string, packages: plan.packages[i] as string[], entries: out.entries });
    }
    return chunks;
  } catch (e) {
    for (const out of outputs) out.writer.finish().catch(() => undefined);
    throw e;
  }
}
