import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buildBaseImage } from '../../src/build/base.js';
import { cachedFixture, cacheKey } from './fixture-cache.js';
import { REPO_ROOT, requireTool } from './tools.js';

/**
 * The bootable Debian base image, built once per machine per change to its inputs (the
 * build code and the basalt bundle it installs) and kept as an OCI layout in the fixture
 * cache. VM tests start from it.
 */
export const BASE_REF = 'base';
/** The SOURCE_DATE_EPOCH of the shared build (test/build/base.test.ts rebuilds with it and compares). */
export const BASE_SOURCE_DATE_EPOCH = 1_700_000_000;

async function inputsHash(): Promise<string> {
  const h = createHash('sha256');
  const dir = join(REPO_ROOT, 'src/build');
  for (const f of (await readdir(dir)).sort()) h.update(f).update(await readFile(join(dir, f)));
  h.update(await readFile(join(REPO_ROOT, 'dist/basalt.mjs')));
  const chunks = join(REPO_ROOT, 'dist/chunks');
  for (const f of (await readdir(chunks)).filter((n) => n.endsWith('.mjs')).sort()) h.update(f).update(await readFile(join(chunks, f)));
  return h.digest('hex');
}

/** `oci:DIR:base` of the cached base image. */
export async function baseImage(): Promise<string> {
  for (const t of ['mmdebstrap', 'systemd-nspawn']) requireTool(t);
  const key = cacheKey('base-image', await inputsHash());
  const dir = await cachedFixture(key, async (tmp) => {
    await buildBaseImage({ name: 'localhost/basalt-test/base:cached', transport: { storeRoot: join(tmp, 'layout') }, sourceDateEpoch: BASE_SOURCE_DATE_EPOCH });
  });
  return `oci:${join(dir, 'layout')}:localhost/basalt-test/base:cached`;
}
