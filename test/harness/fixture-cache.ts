/**
 * A per-machine cache for expensive test fixtures (kernels, images, disks), keyed by a hash
 * of everything that goes into them, so each is built once per machine and reused by every
 * run until an input changes. Entries appear whole or not at all: built in a temp dir,
 * then renamed into place. Test files run in parallel processes, and on a cold machine
 * several of them ask for the same base image at once: a lock directory makes one process
 * build while the others wait for it (a lock whose owner died is taken over), so each
 * fixture is built once per run, not once per test file.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const CACHE_ROOT = process.env.BASALT_TEST_CACHE ?? '/var/tmp/basalt-test-cache';

/** A stable key from any JSON-able description of a fixture's inputs. */
export function cacheKey(name: string, inputs: unknown): string {
  return `${name}-${createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16)}`;
}

const isDirectory = (path: string): Promise<boolean> => stat(path).then((s) => s.isDirectory(), () => false);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the build lock of `key`, waiting while a live process holds it. */
async function lock(key: string): Promise<() => Promise<void>> {
  const dir = join(CACHE_ROOT, `.${key}.lock`);
  for (;;) {
    try {
      await mkdir(dir);
      await writeFile(join(dir, 'pid'), String(process.pid));
      return () => rm(dir, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = Number(await readFile(join(dir, 'pid'), 'utf8').catch(() => ''));
    // A lock without a pid is being taken right now, unless it is old: its taker died.
    const age = Date.now() - (await stat(dir).then((s) => s.mtimeMs, () => Date.now()));
    if (owner ? !alive(owner) : age > 60_000) await rm(dir, { recursive: true, force: true });
    else await new Promise((r) => setTimeout(r, 2000));
  }
}

/**
 * The directory of the cached fixture `key`, building it with `build(dir)` when missing.
 */
export async function cachedFixture(key: string, build: (dir: string) => Promise<void>): Promise<string> {
  const final = join(CACHE_ROOT, key);
  if (await isDirectory(final)) return final;
  await mkdir(CACHE_ROOT, { recursive: true });
  const unlock = await lock(key);
  try {
    if (await isDirectory(final)) return final; // built by the process we waited for
    const tmp = await mkdtemp(join(CACHE_ROOT, `.${key}.building-`));
    try {
      await build(tmp);
      await rename(tmp, final);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
    return final;
  } finally {
    await unlock();
  }
}
