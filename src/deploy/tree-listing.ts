import { runRepo } from './ostree-tool.js';
import { parseGVariantXattrs } from './gvariant-text.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from '../oci/layer/whiteout.js';

/** What a layer commit says about directories and deletions, from `ostree ls -R -X`. */
export interface LayerListing {
  /** Directory path (no leading slash) → its metadata in this layer. */
  dirs: Map<string, DirMetadata>;
  /** Paths this layer's whiteouts delete from lower layers. */
  deleted: string[];
  /** Directories whose lower content this layer hides. */
  opaque: string[];
}

export interface DirMetadata {
  mode: number;
  uid: number;
  gid: number;
  xattrs: Map<string, Buffer>;
}

// e.g. `d00755 0 0      0 { @a(ayay) [] } /usr/lib`
const LINE = /^([d\-l])(\d+) (\d+) (\d+) +(\d+) \{ (.*) \} \/(.*)$/;

export async function listLayer(repo: string, ref: string): Promise<LayerListing> {
  const { stdout } = await runRepo(repo, ['ls', '-R', '-X', ref], { what: `listing ${ref}` });
  const listing: LayerListing = { dirs: new Map(), deleted: [], opaque: [] };
  for (const line of stdout.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, type, mode, uid, gid, , xattrs, path] = m as unknown as [string, string, string, string, string, string, string, string];
    const slash = path.lastIndexOf('/');
    const name = path.slice(slash + 1);
    const parent = slash === -1 ? '' : path.slice(0, slash);
    if (type === '-' && name === OPAQUE_MARKER) listing.opaque.push(parent);
    else if (type === '-' && name.startsWith(WHITEOUT_PREFIX)) listing.deleted.push(parent ? `${parent}/${name.slice(WHITEOUT_PREFIX.length)}` : name.slice(WHITEOUT_PREFIX.length));
    else if (type === 'd' && path !== '') listing.dirs.set(path, { mode: parseInt(mode, 8) & 0o7777, uid: Number(uid), gid: Number(gid), xattrs: parseGVariantXattrs(xattrs) });
  }
  return listing;
}
