import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { createFifo } from './fifo.js';
import { BasaltError } from '../oci/errors.js';
import { filterLayerForOstree, type FilterSummary } from './layer-filter.js';
import { formatGVariantStringArray, parseGVariantStringArray } from './gvariant-text.js';
import { metadataKey, runRepo } from './ostree-tool.js';

/** Layer commits live under this ref prefix, one per diff-id. */
export const LAYER_REF_PREFIX = 'basalt/layer';

/** Above this, the list of implied directories is not stored (command-line size limits). */
const MAX_IMPLICIT_LIST_BYTES = 64 * 1024;

/** `sha256:abc…` → `basalt/layer/sha256_abc…` (ostree refs cannot hold a colon). */
export function layerRef(diffId: string): string {
  const m = /^([a-z0-9]+):([a-f0-9]+)$/.exec(diffId);
  if (!m) throw new BasaltError('invalid', `layer diff-id "${diffId}" is not ALGORITHM:HEX`);
  return `${LAYER_REF_PREFIX}/${m[1]}_${m[2]}`;
}

export interface LayerCommit extends FilterSummary {
  ref: string;
  commit: string;
}

/**
 * Streams one uncompressed layer tar into an ostree commit under its diff-id ref. The tar is
 * first committed without a ref (ostree reads it from a pipe while basalt rewrites it), then a
 * second commit reusing that tree adds the ref and the metadata known only at the end (the
 * directories the layer implied). Until that ref exists the layer counts as not imported, so a
 * run cut short leaves only an unreferenced commit that `ostree prune` removes.
 */
export async function commitLayer(repo: string, tar: Readable, diffId: string, options: { what?: string; onBytes?: (total: number) => void } = {}): Promise<LayerCommit> {
  const ref = layerRef(diffId);
  const what = options.what ?? `layer ${diffId}`;
  const fifo = await createFifo(join(repo, 'tmp'));
  let summary: FilterSummary;
  let tree: string;
  try {
    const committing = runRepo(repo, ['commit', '--orphan', `--tree=tar=${fifo.path}`, '--tar-autocreate-parents', '--timestamp=@0'], { what: `importing ${what} into ostree` });
    // Whatever happens to ostree, a writer waiting for it to open the pipe must not hang.
    const settled = committing.then(
      () => fifo.unblock(),
      () => fifo.unblock(),
    );
    try {
      const pipe = await fifo.openWriter();
      summary = await filterLayerForOstree(tar, pipe, what, options.onBytes);
      fifo.closeWriter();
    } catch (e) {
      fifo.closeWriter();
      tar.destroy();
      await settled;
      // ostree's own message says more than the broken pipe it caused.
      await committing;
      throw e;
    }
    tree = (await committing).stdout.trim();
  } finally {
    await fifo.remove();
  }
  const args = ['commit', `--tree=ref=${tree}`, `--branch=${ref}`, '--timestamp=@0', `--add-metadata-string=basalt.diff-id=${diffId}`, `--subject=basalt layer ${diffId}`];
  const implicit = formatGVariantStringArray(summary.implicitDirs);
  if (Buffer.byteLength(implicit) <= MAX_IMPLICIT_LIST_BYTES) args.push(`--add-metadata=basalt.implicit-dirs=${implicit}`);
  const commit = (await runRepo(repo, args, { what: `recording ${what}` })).stdout.trim();
  return { ...summary, ref, commit };
}

/**
 * The directories a layer commit only implied, or undefined when the list was too long to
 * store (then none of the layer's directory metadata is trusted over lower layers').
 */
export async function implicitDirsOf(repo: string, ref: string): Promise<Set<string> | undefined> {
  const text = await metadataKey(repo, ref, 'basalt.implicit-dirs');
  return text === undefined ? undefined : new Set(parseGVariantStringArray(text));
}
