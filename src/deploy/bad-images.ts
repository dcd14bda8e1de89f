import { readFile } from 'node:fs/promises';
import { BasaltError, ioError } from '../oci/errors.js';
import { writeFileAtomic } from '../oci/fsutil.js';

/**
 * Image digests whose deployment failed its health checks on this device. /var is shared by all
 * deployments and never rolled back, so the memory survives the rollback: the automatic update
 * consults it and does not stage the same image again. One line per image:
 * `DIGEST TIME REASON…`; lines starting with `#` are comments.
 */
export const BAD_IMAGES_FILE = '/var/lib/basalt/failed-images';

export interface BadImage {
  digest: string;
  /** ISO 8601, when it was recorded. */
  time: string;
  reason: string;
}

const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

function checkDigest(digest: string): void {
  if (!DIGEST.test(digest)) throw new BasaltError('usage', `"${digest}" is not an image digest (ALGORITHM:HEX)`);
}

export async function readBadImages(file = BAD_IMAGES_FILE): Promise<BadImage[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw ioError(`reading the failed-image list ${file}`, e);
  }
  const out: BadImage[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [digest = '', time = '', ...reason] = trimmed.split(/\s+/);
    if (DIGEST.test(digest)) out.push({ digest, time, reason: reason.join(' ') });
  }
  return out;
}

/** Whether `digest` failed on this device before (the update path refuses to stage it). */
export async function isKnownBadImage(digest: string, file = BAD_IMAGES_FILE): Promise<boolean> {
  return (await readBadImages(file)).some((b) => b.digest === digest);
}

function format(list: readonly BadImage[]): string {
  return `# Written by basalt: images that failed their health checks here; not staged again.\n${list.map((b) => `${b.digest} ${b.time}${b.reason ? ` ${b.reason.replace(/\s+/g, ' ')}` : ''}\n`).join('')}`;
}

/** Records `digest` (once; a second failure keeps the first record). */
export async function rememberBadImage(digest: string, reason = '', file = BAD_IMAGES_FILE, now = new Date()): Promise<void> {
  checkDigest(digest);
  const list = await readBadImages(file);
  if (list.some((b) => b.digest === digest)) return;
  list.push({ digest, time: now.toISOString(), reason });
  try {
    await writeFileAtomic(file, format(list));
  } catch (e) {
    throw ioError(`writing the failed-image list ${file}`, e);
  }
}

/** Lets an image be tried again; returns whether it was listed. */
export async function forgetBadImage(digest: string, file = BAD_IMAGES_FILE): Promise<boolean> {
  checkDigest(digest);
  const list = await readBadImages(file);
  const kept = list.filter((b) => b.digest !== digest);
  if (kept.length === list.length) return false;
  try {
    await writeFileAtomic(file, format(kept));
  } catch (e) {
    throw ioError(`writing the failed-image list ${file}`, e);
  }
  return true;
}
