import { lstat, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { BasaltError, ioError } from '../oci/errors.js';
import { writeStreamAtomic } from '../oci/fsutil.js';
import { packDirectory } from '../oci/layer/pack.js';
import { DEFAULT_GZIP_LEVEL } from '../oci/layer/compression.js';
import { parseImageManifest, type ImageManifest, type ValidationMode } from './manifest.js';

/**
 * Validates an image layout directory: a `manifest` file and a `rootfs/` directory, nothing
 * else at the top (actool mode, like actool, accepts any top-level name starting "rootfs").
 */
export async function validateLayout(dir: string, mode: ValidationMode = 'strict'): Promise<ImageManifest> {
  const st = await stat(dir).catch((e: unknown) => {
    throw ioError(`image layout ${dir}`, e);
  });
  if (!st.isDirectory()) throw new BasaltError('invalid', `${dir} is not a directory (an image layout is a directory holding "manifest" and "rootfs/")`);
  const names = await readdir(dir);
  if (!names.includes('manifest')) throw layoutError(dir, 'no image manifest ("manifest") in the layout');
  if (!names.includes('rootfs')) throw layoutError(dir, 'no rootfs directory in the layout');
  if (!(await lstat(join(dir, 'rootfs'))).isDirectory()) throw layoutError(dir, 'rootfs is not a directory');
  const manifest = parseImageManifest(await readFile(join(dir, 'manifest')), join(dir, 'manifest'), mode);
  for (const name of names.sort()) {
    if (name === 'manifest' || name === 'rootfs') continue;
    if (mode === 'actool' && name.startsWith('rootfs')) continue;
    throw layoutError(dir, `unrecognized file path in layout: "${name}" (only "manifest" and "rootfs/" may be at the top)`);
  }
  return manifest;
}

function layoutError(dir: string, rule: string): BasaltError {
  return new BasaltError('invalid', `${dir}: invalid image layout: ${rule}`, { hint: 'see the App Container spec v0.8.11, "Image Layout"' });
}

export interface BuildOptions {
  overwrite?: boolean;
  compression?: boolean;
  ownerRoot?: boolean;
  sourceDateEpoch?: number;
}

/**
 * Builds an ACI from an image layout: a tar of `manifest`, `rootfs` and everything under
 * it in byte order (no user or group names, mtimes clamped to SOURCE_DATE_EPOCH), gzip
 * level 6 unless told not to compress. The same layout and epoch give the same bytes.
 */
export async function buildAci(dir: string, out: string, options: BuildOptions = {}): Promise<ImageManifest> {
  const manifest = await validateLayout(dir, 'strict');
  if (!options.overwrite && (await stat(out).then(() => true, () => false)))
    throw new BasaltError('usage', `${out} already exists`, { hint: 'pass --overwrite to replace it' });
  const tar = new PassThrough();
  let body: Readable = tar;
  if (options.compression !== false) {
    const gzip = createGzip({ level: DEFAULT_GZIP_LEVEL });
    tar.on('error', (e) => gzip.destroy(e));
    body = tar.pipe(gzip);
  }
  const packing = packDirectory(dir, tar, {
    ownerRoot: options.ownerRoot === true,
    ...(options.sourceDateEpoch !== undefined ? { sourceDateEpoch: options.sourceDateEpoch } : {}),
  }).catch((e: unknown) => {
    tar.destroy(e as Error);
    throw e;
  });
  await Promise.all([writeStreamAtomic(out, body), packing]);
  return manifest;
}
