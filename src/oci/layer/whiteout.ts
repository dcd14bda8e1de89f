import { BasaltError } from '../errors.js';

/** OCI/AUFS whiteout naming: `.wh.NAME` deletes NAME from lower layers. */
export const WHITEOUT_PREFIX = '.wh.';
/** `.wh..wh..opq` in a directory hides everything lower layers put in it. */
export const OPAQUE_MARKER = '.wh..wh..opq';

export type Whiteout =
  | { kind: 'delete'; name: string } // remove NAME (and below) from lower layers
  | { kind: 'opaque' } // hide the lower content of the containing directory
  | { kind: 'ignore' }; // other AUFS metadata (`.wh..wh.plnk`, `.wh..wh.aufs`): not content

/** What a file name means as a whiteout, or undefined for ordinary names. */
export function classifyWhiteout(name: string): Whiteout | undefined {
  if (!name.startsWith(WHITEOUT_PREFIX)) return undefined;
  if (name === OPAQUE_MARKER) return { kind: 'opaque' };
  if (name.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return { kind: 'ignore' };
  const target = name.slice(WHITEOUT_PREFIX.length);
  if (target === '' || target === '.' || target === '..') return { kind: 'ignore' };
  return { kind: 'delete', name: target };
}

/**
 * An entry path as components relative to the layer root: leading `/` and `./` are dropped
 * (as tar does), empty and `.` components vanish, and any `..` component is refused — a
 * layer has no business naming one, even when it would stay inside.
 * Returns [] for the root itself.
 */
export function entryComponents(path: string, what: string): string[] {
  const components: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new BasaltError('unsafe', `${what}: entry "${path}" has a ".." component; refusing to extract it`, { hint: 'the layer is malformed or malicious' });
    components.push(part);
  }
  return components;
}

/** `a/b/c` → ['a', 'a/b'] (proper ancestors, top first). */
export function ancestorsOf(key: string): string[] {
  const out: string[] = [];
  let slash = key.indexOf('/');
  while (slash !== -1) {
    out.push(key.slice(0, slash));
    slash = key.indexOf('/', slash + 1);
  }
  return out;
}
