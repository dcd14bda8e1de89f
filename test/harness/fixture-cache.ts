/**
 * A per-machine cache for expensive test fixtures (kernels, images, disks), keyed by a hash
 * of everything that goes into them, so each is built once per machine and reused by every
 * run until an input changes. Entries appear whole or not at all: built in a temp dir,
 * then renamed into place (when two runs race, the first rename wins and the other's copy
 * is dropped).
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

export const CACHE_ROOT = process.env.BASALT_TEST_CACHE ?? '/var/tmp/basalt-test-cache';

/** A stable key from any JSON-able description of a fixture's inputs. */
export function cacheKey(name: string, inputs: unknown): string {
  return `${name}-${createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16)}`;
}

/**
 * The directory of the cached fixture `key`, building it with `build(dir)` when missing.
 */
export async function cachedFixture(key: string, build: (dir: string) => Promise<void>): Promise<string> {
  const final = join(CACHE_ROOT, key);
  if (await stat(final).then((s) => s.isDirectory(), () => false)) return final;
  await mkdir(CACHE_ROOT, { recursive: true });
  const tmp = await mkdtemp(join(CACHE_ROOT, `.${key}.building-`));
  try {
    await build(tmp);
    await rename(tmp, final).catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e; // another run finished first: use its copy
      await rm(tmp, { recursive: true, force: true });
    });
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return final;
}
