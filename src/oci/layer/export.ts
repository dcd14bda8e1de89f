import type { Readable, Writable } from 'node:stream';
import { BasaltError } from '../errors.js';
import { autoDecompress } from './compression.js';
import { readTar, TarWriter, type TarEntryType } from './tar.js';
import { ancestorsOf, classifyWhiteout, entryComponents } from './whiteout.js';

/** Opens one layer's tar stream (compressed or not) afresh; each layer is read twice. */
export type LayerOpener = () => Promise<Readable>;

interface IndexedEntry {
  type: TarEntryType;
  /** Position in the layer; when a path occurs twice the last occurrence counts. */
  ordinal: number;
  /** Hardlinks: the normalised path linked to. */
  target?: string;
}

interface LayerIndex {
  entries: Map<string, IndexedEntry>;
  whiteouts: string[];
  opaqueDirs: string[];
}

/** What pass two does with one layer. */
interface LayerPlan {
  winners: Set<string>;
  /** Hidden files whose data must still be written, under the name of a surviving hardlink. */
  materialise: Map<string, string>;
  /** Surviving hardlinks and the name they must point to. */
  linkTo: Map<string, string>;
}

/**
 * Writes the flattened root filesystem of a layer stack (bottom layer first, as in a
 * manifest) to `out` as one tar stream, without unpacking anything to disk: pass one reads
 * only the headers of every layer to decide, top-down, which layer's entry each path comes
 * from (whiteouts and opaque directories applied); pass two streams the winning entries,
 * bottom layer first. A hardlink whose target was shadowed keeps its content: the target's
 * data is written under the link's name. The output is itself a valid uncompressed layer.
 */
export async function exportFlattened(layers: LayerOpener[], out: Writable, options: { what?: string } = {}): Promise<void> {
  const what = (i: number): string => `${options.what ?? 'layer'} ${i + 1} of ${layers.length}`;
  const indexes: LayerIndex[] = [];
  for (const [i, open] of layers.entries()) indexes.push(await indexLayer(await autoDecompress(await open()), what(i)));
  const plans = planLayers(indexes, what);
  const writer = new TarWriter(out);
  for (const [i, open] of layers.entries()) {
    const index = indexes[i] as LayerIndex;
    const plan = plans[i] as LayerPlan;
    let ordinal = 0;
    for await (const entry of readTar(await autoDecompress(await open()), what(i))) {
      const key = entryComponents(entry.path, what(i)).join('/');
      if (index.entries.get(key)?.ordinal !== ordinal++) continue; // whiteout, root, or an earlier duplicate
      const header = { ...entry, path: key };
      const materialisedAs = plan.materialise.get(key);
      if (materialisedAs !== undefined) await writer.add({ ...header, path: materialisedAs }, entry.body);
      else if (plan.winners.has(key)) {
        if (entry.type === 'hardlink') {
          const target = plan.linkTo.get(key) as string;
          if (target !== key) await writer.add({ ...header, linkname: target });
        } else await writer.add(header, entry.body);
      }
    }
  }
  await writer.finish();
}

/** The same operation under the name mutate/squash code looks for. */
export const flattenToLayer = exportFlattened;

async function indexLayer(tar: Readable, what: string): Promise<LayerIndex> {
  const index: LayerIndex = { entries: new Map(), whiteouts: [], opaqueDirs: [] };
  let ordinal = 0;
  for await (const entry of readTar(tar, what)) {
    const components = entryComponents(entry.path, what);
    const position = ordinal++;
    const name = components.pop();
    if (name === undefined) continue; // the root directory itself is not exported
    const dir = components.join('/');
    const whiteout = classifyWhiteout(name);
    if (whiteout?.kind === 'delete') index.whiteouts.push(dir ? `${dir}/${whiteout.name}` : whiteout.name);
    else if (whiteout?.kind === 'opaque') index.opaqueDirs.push(dir);
    if (whiteout) continue;
    const key = dir ? `${dir}/${name}` : name;
    const indexed: IndexedEntry = { type: entry.type, ordinal: position };
    if (entry.type === 'hardlink') indexed.target = entryComponents(entry.linkname ?? '', what).join('/');
    index.entries.delete(key); // keep map order = order of the occurrence that counts
    index.entries.set(key, indexed);
  }
  return index;
}

type Decision = 'directory' | 'other' | 'implied-directory';

/** Decides, top layer first, which layer each path comes from. */
function planLayers(indexes: LayerIndex[], what: (i: number) => string): LayerPlan[] {
  const decided = new Map<string, Decision>();
  const whitedOut = new Set<string>();
  const opaque = new Set<string>();
  let rootOpaque = false;
  const hiddenByHigherLayer = (key: string): boolean =>
    rootOpaque || whitedOut.has(key) || ancestorsOf(key).some((a) => whitedOut.has(a) || opaque.has(a) || decided.get(a) === 'other');

  const plans: LayerPlan[] = indexes.map(() => ({ winners: new Set(), materialise: new Map(), linkTo: new Map() }));
  for (let i = indexes.length - 1; i >= 0; i--) {
    const index = indexes[i] as LayerIndex;
    const plan = plans[i] as LayerPlan;
    for (const [key, entry] of index.entries) {
      if (hiddenByHigherLayer(key)) continue;
      const earlier = decided.get(key);
      if (earlier === 'directory' || earlier === 'other') continue;
      if (earlier === 'implied-directory' && entry.type !== 'directory') continue; // a higher layer put children under it
      plan.winners.add(key);
      decided.set(key, entry.type === 'directory' ? 'directory' : 'other');
      for (const a of ancestorsOf(key)) if (!decided.has(a)) decided.set(a, 'implied-directory');
    }
    // A layer's whiteouts hide only what lies below it, so they take effect after its entries.
    for (const w of index.whiteouts) whitedOut.add(w);
    for (const d of index.opaqueDirs) if (d === '') rootOpaque = true; else opaque.add(d);
  }
  for (let i = 0; i < plans.length; i++) resolveHardlinks(indexes, plans, i, what(i));
  return plans;
}

/**
 * Points every surviving hardlink at an entry that is written before it. A link whose
 * target (in the same layer) was shadowed gets the target's data written under the first
 * such link's name, and the other links point there.
 */
function resolveHardlinks(indexes: LayerIndex[], plans: LayerPlan[], i: number, what: string): void {
  const index = indexes[i] as LayerIndex;
  const plan = plans[i] as LayerPlan;
  for (const [key, entry] of index.entries) {
    if (entry.type !== 'hardlink' || !plan.winners.has(key)) continue;
    let target = entry.target ?? '';
    let linked = index.entries.get(target);
    for (let hops = 0; linked?.type === 'hardlink' && hops < 64; hops++) {
      target = linked.target ?? '';
      linked = index.entries.get(target);
    }
    if (linked) {
      if (linked.type === 'directory' || linked.type === 'hardlink' || linked.ordinal > entry.ordinal)
        throw new BasaltError('invalid', `${what}: hardlink "${key}" points to "${target}", which is not an earlier non-directory entry`);
      if (plan.winners.has(target)) plan.linkTo.set(key, target);
      else {
        const name = plan.materialise.get(target) ?? key;
        plan.materialise.set(target, name);
        plan.linkTo.set(key, name);
      }
      continue;
    }
    // A link to a lower layer's file: fine while that file is what the flattened tree shows.
    const lower = plans.findIndex((p) => p.winners.has(target));
    if (lower === -1 || lower >= i)
      throw new BasaltError('unsupported', `${what}: hardlink "${key}" points to "${target}", which the flattened image does not contain as it was`);
    plan.linkTo.set(key, (plans[lower] as LayerPlan).linkTo.get(target) ?? target);
  }
}
