import { BasaltError } from '../oci/errors.js';
import { runOstree } from './ostree-tool.js';
import { parseKeyFile } from './origin.js';
import { deploymentKey, openHost, readOrigin, type Host, type HostOptions } from './host.js';
import { entryId } from './bootentries.js';
import type { Deployment } from './sysroot.js';

/**
 * ostree's index of a deployment: its place in ostree's list, where a staged deployment
 * (not among the boot entries basalt reads) comes first.
 */
export function ostreeIndex(host: Host, d: Deployment): number {
  const i = host.deployments.indexOf(d);
  if (i < 0) throw new BasaltError('not-found', `deployment ${deploymentKey(d)} is not in ${host.sysroot}`);
  return i + (host.staged ? 1 : 0);
}

export async function isPinned(host: Host, d: Deployment): Promise<boolean> {
  return parseKeyFile(await readOrigin(host.sysroot, d)).get('libostree-transient')?.get('pinned') === 'true';
}

/**
 * A deployment named the ways basalt shows them: its index in `basalt status` order (0 is the
 * default), its ESP entry id (`default-0123456789ab.0`), or CHECKSUM[.SERIAL] (a unique prefix
 * of the checksum will do). Without a name: the booted deployment, else the default.
 */
export function findDeployment(host: Host, name?: string): Deployment {
  if (name === undefined) return host.current;
  if (/^\d+$/.test(name)) {
    const d = host.deployments[Number(name)];
    if (!d) throw new BasaltError('not-found', `there is no deployment ${name} (there are ${host.deployments.length})`, { hint: 'basalt status lists them' });
    return d;
  }
  const matches = host.deployments.filter((d) => entryId(d) === name || deploymentKey(d) === name || (/^[0-9a-f]{6,64}$/.test(name) && d.checksum.startsWith(name)));
  if (matches.length === 1) return matches[0] as Deployment;
  if (matches.length === 0) throw new BasaltError('not-found', `no deployment matches "${name}"`, { hint: 'give an index, an entry id or a checksum from basalt status' });
  throw new BasaltError('usage', `"${name}" matches ${matches.length} deployments`, { hint: 'give CHECKSUM.SERIAL' });
}

/**
 * `basalt pin` / `unpin`: ostree's own pinning (`ostree admin pin`), which marks the deployment
 * in its origin file; ostree then never drops it when deploying, and basalt cleanup keeps it.
 */
export async function setPinned(pinned: boolean, options: HostOptions & { deployment?: string } = {}): Promise<{ id: string; pinned: boolean; changed: boolean }> {
  const host = await openHost(options);
  const d = findDeployment(host, options.deployment);
  const was = await isPinned(host, d);
  if (was !== pinned) {
    const args = ['admin', 'pin', `--sysroot=${host.sysroot}`, ...(pinned ? [] : ['--unpin']), String(ostreeIndex(host, d))];
    await runOstree(args, { what: `${pinned ? 'pinning' : 'unpinning'} deployment ${deploymentKey(d)}` });
  }
  return { id: deploymentKey(d), pinned, changed: was !== pinned };
}
