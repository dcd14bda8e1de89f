/**
 * The kickstart is read and checked before anything else is done, so a typo stops the build
 * instead of an install on a machine far away. The parser belongs to the installer's command
 * (src/deploy/kickstart); media code does not depend on deploy, so the caller hands it in.
 */
import { readFile } from 'node:fs/promises';
import { BasaltError, ioError } from '../../../oci/errors.js';

/** Throws BasaltError('invalid', 'FILE:LINE: ...') for a kickstart the installer would refuse. */
export type KickstartValidator = (text: string, source: string) => { warnings: readonly { line: number; message: string }[] };

export async function readKickstart(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new BasaltError('not-found', `kickstart ${path} does not exist`, { hint: 'give the path of a kickstart file with --kickstart' });
    throw ioError(`reading the kickstart ${path}`, e);
  }
}
