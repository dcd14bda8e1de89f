import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ioError } from '../oci/errors.js';

/**
 * ostree (2022.7 included) skips finalising a staged deployment at shutdown while this file
 * exists ("Not finalizing; found /run/ostree/staged-deployment-locked"). Newer ostree has
 * `admin deploy --lock-finalization` for it; 2022.7 has not, so basalt creates the file itself,
 * *before* staging as rpm-ostree does, so a shutdown racing the stage cannot finalise it.
 * /run is a tmpfs: a locked deployment that was never unlocked is gone after a reboot (its
 * layers stay in the repository, so staging it again downloads nothing).
 */
export const STAGED_LOCK = '/run/ostree/staged-deployment-locked';

export async function lockStaged(path = STAGED_LOCK): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, '', { mode: 0o640 });
  } catch (e) {
    throw ioError(`creating ${path}`, e);
  }
}

/** Removes the lock; returns whether there was one. */
export async function unlockStaged(path = STAGED_LOCK): Promise<boolean> {
  const existed = await isStagedLocked(path);
  try {
    await rm(path, { force: true });
  } catch (e) {
    throw ioError(`removing ${path}`, e);
  }
  return existed;
}

export async function isStagedLocked(path = STAGED_LOCK): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
