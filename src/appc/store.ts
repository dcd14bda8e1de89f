import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError, ioError } from '../oci/errors.js';
import { fsyncDir, makeTempDir } from '../oci/fsutil.js';
import type { ImageManifest } from './manifest.js';

/**
 * basalt's ACI store: one directory per image ID (`sha512-HEX`) holding the ACI as fetched
 * (`image.aci`), its manifest and, when it was signed, the signature and the fingerprint of
 * the trusted key that made it. An image appears whole or not at all (built in a temp
 * directory beside it, then renamed).
 */
export const DEFAULT_ACI_STORE = '/var/lib/basalt/aci';

export interface StoredAci {
  imageId: string;
  name: string;
  labels: Record<string, string>;
  dir: string;
  aci: string;
  signedBy?: string;
  source?: string;
}

export async function storeAci(root: string, item: { imageId: string; manifest: ImageManifest; manifestBytes: Buffer; aci: Buffer; signature?: string; signedBy?: string; source: string }): Promise<StoredAci> {
  if (!/^sha512-[0-9a-f]{128}$/.test(item.imageId)) throw new BasaltError('invalid', `image ID ${item.imageId} is not sha512-<128 hex digits>`);
  const final = join(root, 'images', item.imageId);
  const entry = toEntry(final, item.imageId, item.manifest, item.signedBy, item.source);
  if (await stat(final).then(() => true, () => false)) return entry;
  try {
    await mkdir(join(root, 'images'), { recursive: true });
    const tmp = await makeTempDir('aci-store', join(root, 'images'));
    await writeFile(join(tmp, 'image.aci'), item.aci);
    await writeFile(join(tmp, 'manifest'), item.manifestBytes);
    if (item.signature !== undefined) await writeFile(join(tmp, 'image.aci.asc'), item.signature);
    await writeFile(join(tmp, 'info.json'), `${JSON.stringify({ imageId: item.imageId, source: item.source, signedBy: item.signedBy ?? null }, null, 2)}\n`);
    await rename(tmp, final).catch(async (e: NodeJS.ErrnoException) => {
      await rm(tmp, { recursive: true, force: true });
      if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
    });
    await fsyncDir(join(root, 'images'));
  } catch (e) {
    throw ioError(`ACI store ${root}`, e);
  }
  return entry;
}

function toEntry(dir: string, imageId: string, manifest: ImageManifest, signedBy: string | undefined, source: string | undefined): StoredAci {
  const labels = Object.fromEntries((manifest.labels ?? []).map((l) => [l.name, l.value]));
  return { imageId, name: manifest.name, labels, dir, aci: join(dir, 'image.aci'), ...(signedBy ? { signedBy } : {}), ...(source ? { source } : {}) };
}

export async function listStore(root: string): Promise<StoredAci[]> {
  const ids = await readdir(join(root, 'images')).catch(() => [] as string[]);
  const out: StoredAci[] = [];
  for (const id of ids.filter((i) => i.startsWith('sha512-')).sort()) {
    const dir = join(root, 'images', id);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest'), 'utf8')) as ImageManifest;
    const info = JSON.parse(await readFile(join(dir, 'info.json'), 'utf8').catch(() => '{}')) as { signedBy?: string | null; source?: string };
    out.push(toEntry(dir, id, manifest, info.signedBy ?? undefined, info.source));
  }
  return out;
}

/** A stored image by ID (a unique prefix of it is enough), or by name (and labels). */
export async function findInStore(root: string, query: string, labels: Record<string, string> = {}): Promise<StoredAci | undefined> {
  const all = await listStore(root);
  if (query.startsWith('sha512-')) {
    const hits = all.filter((a) => a.imageId.startsWith(query));
    if (hits.length > 1) throw new BasaltError('usage', `image ID prefix ${query} is ambiguous`);
    return hits[0];
  }
  return all.find((a) => a.name === query && Object.entries(labels).every(([k, v]) => a.labels[k] === v));
}
