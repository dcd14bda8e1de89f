import { runOstree, runRepo, listRefs, metadataKey, resolveRev } from './ostree-tool.js';
import { IMAGE_REF_PREFIX, META } from './import.js';
import { LAYER_REF_PREFIX, layerRef } from './layer-commit.js';
import { deploymentKey, openHost, syncEsp, type HostOptions } from './host.js';
import { isPinned, ostreeIndex } from './pin.js';
import { removeEntriesOf } from './esp-prune.js';
import { crashPoint } from './crash-points.js';
import { rollbackTarget } from './rollback.js';
import { repoOf, type Deployment } from './sysroot.js';
import type { MirrorResult } from './bootentries.js';

export interface CleanupOptions extends HostOptions {
  espDir?: string;
}

export interface CleanupResult {
  /** CHECKSUM.SERIAL of each deployment removed. */
  undeployed: string[];
  /** Image and layer refs deleted (their commits become garbage unless a deployment uses them). */
  refsDeleted: string[];
  /** ostree's own summary of the prune. */
  prune: string;
  esp?: MirrorResult;
}

/**
 * `basalt cleanup`. Keeps the deployments that matter, booted (or default), the pending default
 * and the rollback, plus pinned ones (and a staged one, which is not among the boot entries);
 * undeploys the rest. Then deletes image refs whose commit no kept deployment uses and layer
 * refs no kept deployment's image lists (the layer cache for images that are gone), and lets
 * `ostree admin cleanup` prune the repository: it knows the deployments (including a staged
 * one), so objects they use stay whatever the refs say.
 */
export async function cleanup(options: CleanupOptions = {}): Promise<CleanupResult> {
  const host = await openHost(options);
  const keep = new Set<Deployment>();
  const first = host.deployments[0];
  if (first) keep.add(first);
  if (host.booted) keep.add(host.booted);
  const rollback = rollbackTarget(host);
  if (rollback) keep.add(rollback);
  const remove: Deployment[] = [];
  for (const d of host.deployments) if (!keep.has(d) && !(await isPinned(host, d))) remove.push(d);
  // Their ESP entries go before the deployments, so no entry ever names a deleted deployment.
  await removeEntriesOf(host, remove, options.espDir);
  // Highest index first, so the indexes of the rest do not move.
  const undeployed: string[] = [];
  for (const d of [...remove].sort((a, b) => ostreeIndex(host, b) - ostreeIndex(host, a))) {
    await runOstree(['admin', 'undeploy', `--sysroot=${host.sysroot}`, String(ostreeIndex(host, d))], { what: `removing deployment ${deploymentKey(d)}` });
    undeployed.push(deploymentKey(d));
  }
  if (undeployed.length > 0) await crashPoint('ostree-deployed');

  const repo = repoOf(host.sysroot);
  const kept = host.deployments.filter((d) => !remove.includes(d)).map((d) => d.checksum);
  if (host.staged) kept.push(host.staged.slice(0, 64));
  const keptCommits = new Set(kept);
  const keptLayers = new Set<string>();
  for (const commit of keptCommits) {
    const text = (await metadataKey(repo, commit, META.layers)) ?? '';
    for (const m of text.matchAll(/'([a-z0-9]+:[a-f0-9]+)'/g)) keptLayers.add(layerRef(m[1] as string));
  }
  const refsDeleted: string[] = [];
  for (const ref of await listRefs(repo, IMAGE_REF_PREFIX)) {
    const commit = await resolveRev(repo, ref);
    if (commit !== undefined && keptCommits.has(commit)) continue;
    await runRepo(repo, ['refs', '--delete', ref], { what: `deleting ref ${ref}` });
    refsDeleted.push(ref);
  }
  for (const ref of await listRefs(repo, LAYER_REF_PREFIX)) {
    if (keptLayers.has(ref)) continue;
    await runRepo(repo, ['refs', '--delete', ref], { what: `deleting ref ${ref}` });
    refsDeleted.push(ref);
  }
  const { stdout } = await runOstree(['admin', 'cleanup', `--sysroot=${host.sysroot}`], { what: `cleaning up ${host.sysroot}` });
  const result: CleanupResult = { undeployed, refsDeleted, prune: stdout.trim() };
  if (undeployed.length > 0) {
    const esp = await syncEsp(await openHost(options), options.espDir);
    if (esp) result.esp = esp;
  }
  return result;
}
