/**
 * The kickstart is checked when the ISO is built, so a typo stops the build instead of an
 * install on a machine far away. The full parser lives with the installer's command
 * (src/deploy/kickstart); until it is merged this checks the directive names of the subset.
 */
import { readFile } from 'node:fs/promises';
import { BasaltError, ioError } from '../../../oci/errors.js';

const DIRECTIVES = new Set([
  'ostreecontainer', 'clearpart', 'ignoredisk', 'reqpart', 'part', 'user', 'rootpw', 'sshkey', 'network', 'services',
  'firewall', 'timezone', 'lang', 'keyboard', 'bootloader', 'text', 'reboot', 'poweroff', 'halt',
]);

export async function readKickstart(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new BasaltError('not-found', `kickstart ${path} does not exist`, { hint: 'give the path of a kickstart file with --kickstart' });
    throw ioError(`reading the kickstart ${path}`, e);
  }
}

/** Throws BasaltError('invalid', 'FILE:LINE: ...') for the first line outside the subset. */
export function checkKickstart(text: string, source: string): void {
  let section: string | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const word = line.split(/\s+/)[0] as string;
    if (section) {
      if (word === '%end') section = undefined;
      return;
    }
    if (word === '%pre' || word === '%post') section = word;
    else if (!DIRECTIVES.has(word)) throw new BasaltError('invalid', `${source}:${i + 1}: "${word}" is not a kickstart directive basalt supports`, { hint: 'see docs/kickstart.md for the subset' });
  });
  if (section) throw new BasaltError('invalid', `${source}: ${section} section has no %end`);
  if (!/^\s*ostreecontainer\s/m.test(text)) throw new BasaltError('invalid', `${source}: no ostreecontainer directive (which image to install)`);
}
