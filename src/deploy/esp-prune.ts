import { ENTRIES_DIR, entryId, entryIdOfFile } from './bootentries.js';
import { espTargetOf, type Host } from './host.js';
import { isPinned } from './pin.js';
import type { Deployment } from './sysroot.js';

/**
 * The deployments `ostree admin deploy` (or the finalisation of a staged one) will delete:
 * those of the stateroot that are neither booted, nor the merge deployment (the booted one,
 * else the default), nor pinned. Deployments of other stateroots are kept by ostree.
 */
export async function droppedByDeploy(host: Host): Promise<Deployment[]> {
  const merge = host.booted ?? host.deployments.find((d) => d.stateroot === host.stateroot);
  const out: Deployment[] = [];
  for (const d of host.deployments) {
    if (d.stateroot !== host.stateroot || d === host.booted || d === merge) continue;
    if (await isPinned(host, d)) continue;
    out.push(d);
  }
  return out;
}

/**
 * Removes the ESP entries of deployments about to be deleted, before ostree deletes them.
 * Otherwise, from ostree's deploy until the mirror's last step, the ESP holds an entry whose
 * deployment is gone (a crash there leaves a menu entry that cannot boot). Old entries go
 * first here because they are the ones about to break; the entries that stay still boot.
 */
export async function removeDoomedEntries(host: Host, espDir?: string): Promise<string[]> {
  return removeEntriesOf(host, await droppedByDeploy(host), espDir);
}

/** Removes the ESP entries of `deployments` (those `cleanup` is about to undeploy, say). */
export async function removeEntriesOf(host: Host, deployments: readonly Deployment[], espDir?: string): Promise<string[]> {
  const doomed = new Set(deployments.map((d) => entryId(d)));
  if (doomed.size === 0) return [];
  const target = await espTargetOf(host, espDir);
  if (!target) return [];
  const removed: string[] = [];
  for (const path of await target.list(ENTRIES_DIR)) {
    const id = entryIdOfFile(path.slice(path.lastIndexOf('/') + 1));
    if (id === undefined || !doomed.has(id)) continue;
    await target.remove(path);
    removed.push(path);
  }
  return removed;
}
