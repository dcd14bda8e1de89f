import { lstat, mkdir, readlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { BasaltError, ioError } from '../errors.js';

const MAX_SYMLINK_HOPS = 40; // as the kernel's MAXSYMLINKS

/**
 * Resolves entry paths inside an extraction root without ever leaving it. Parent
 * directories are walked one component at a time with lstat: a relative symlink that stays
 * inside the root is followed (as a chroot would), while an absolute symlink or one whose
 * `..` climbs above the root is refused as 'unsafe'. Results are "real" paths: every
 * component is a real directory, so operating on `host(real)` cannot be redirected.
 *
 * This assumes nothing else modifies the tree during extraction (basalt owns its targets).
 */
export class SafeRoot {
  /** Real paths already checked to be directories (cleared below any path that is removed). */
  private readonly knownDirs = new Set<string>();

  constructor(readonly root: string, private readonly what: string) {}

  host(real: readonly string[]): string {
    return real.length === 0 ? this.root : join(this.root, ...real);
  }

  /**
   * The real path of the directory `components` names. Missing directories are created
   * (mode 0755, reported through `onCreate`) when `create` is set, else undefined is returned.
   */
  async resolveDir(components: readonly string[], entry: string, create: boolean, onCreate?: (real: string[]) => void): Promise<string[] | undefined> {
    const resolved: string[] = [];
    const queue = [...components];
    let hops = 0;
    while (queue.length > 0) {
      const part = queue.shift() as string;
      if (part === '..') {
        if (resolved.length === 0) throw this.unsafe(entry, 'a symlink in its path climbs above the extraction root');
        resolved.pop();
        continue;
      }
      const candidate = [...resolved, part];
      const key = candidate.join('/');
      if (this.knownDirs.has(key)) {
        resolved.push(part);
        continue;
      }
      const st = await this.lstatOrUndefined(candidate, entry);
      if (st === undefined) {
        if (!create) return undefined;
        try {
          await mkdir(this.host(candidate), 0o755);
        } catch (e) {
          throw ioError(`${this.what}: creating the parent of "${entry}"`, e);
        }
        onCreate?.(candidate);
      } else if (st.isSymbolicLink()) {
        if (++hops > MAX_SYMLINK_HOPS) throw this.unsafe(entry, 'its path has a symlink loop');
        const target = await readlink(this.host(candidate));
        if (target.startsWith('/')) throw this.unsafe(entry, `its parent "${key}" is a symlink to the absolute path "${target}"`);
        queue.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
        continue;
      } else if (!st.isDirectory()) {
        throw new BasaltError('invalid', `${this.what}: entry "${entry}" needs "${key}" to be a directory, but it is not`);
      }
      this.knownDirs.add(key);
      resolved.push(part);
    }
    return resolved;
  }

  async lstatOrUndefined(real: readonly string[], entry: string): Promise<Stats | undefined> {
    try {
      return await lstat(this.host(real));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw ioError(`${this.what}: examining "${entry}"`, e);
    }
  }

  /** Must be called when `key` is removed or replaced, so stale "is a directory" facts go. */
  forget(key: string): void {
    if (!this.knownDirs.delete(key)) return;
    const prefix = `${key}/`;
    for (const k of this.knownDirs) if (k.startsWith(prefix)) this.knownDirs.delete(k);
  }

  unsafe(entry: string, why: string): BasaltError {
    return new BasaltError('unsafe', `${this.what}: refusing entry "${entry}": ${why}`, { hint: 'the layer tries to write outside its target; it is malformed or malicious' });
  }
}
