import { BasaltError } from '../oci/errors.js';
import { carriedKargs, editKargs, type KargsEdit } from './kargs-edit.js';
import { deploymentKey, openHost, readOrigin, syncEsp, type Host, type HostOptions } from './host.js';
import { deployCommit } from './redeploy.js';
import { removeDoomedEntries } from './esp-prune.js';
import { crashPoint } from './crash-points.js';
import type { Deployment } from './sysroot.js';
import type { MirrorResult } from './bootentries.js';

export interface RedeployOptions extends HostOptions {
  espDir?: string;
}

export interface RedeployResult {
  /** The deployment whose commit, origin and arguments were deployed again. */
  from: string;
  id: string;
  deployment: Deployment;
  kargs: string[];
  esp?: MirrorResult;
}

function refuseStaged(host: Host, what: string): void {
  if (host.staged)
    throw new BasaltError('usage', `a deployment is staged (${host.staged}); ${what} would discard it`, { hint: 'reboot into it first, or run basalt cleanup to drop it' });
}

/**
 * Which deployment rollback goes to. From a sysroot directory: the second in ostree's order.
 * On a running system: the booted one when something else is the default (an update deployed
 * but not booted yet: rollback undoes it), else the first deployment that is not booted.
 */
export function rollbackTarget(host: Host): Deployment | undefined {
  const [first] = host.deployments;
  if (!host.isBooted) return host.deployments[1];
  if (host.booted && first !== host.booted) return host.booted;
  return host.deployments.find((d) => d !== host.booted);
}

/**
 * `basalt rollback`. Debian's ostree 2022.7 has no `admin set-default` (nor the library call
 * through a command), and reordering ostree's boot entries by hand would bypass its atomic
 * boot-version swap. So rollback deploys the rollback deployment's commit once more, with
 * that deployment's origin file and kernel arguments, as the new default: one
 * `ostree admin deploy`, as crash-safe as any deploy (old or new entry set, never a mix).
 * ostree keeps the booted and merge deployments, so the image rolled back from stays as the
 * next rollback. The difference from a reorder: the new deployment's /etc is ostree's 3-way
 * merge of the current /etc onto the old image's defaults (local changes are carried back),
 * and it has a new deploy serial (a new ESP entry id).
 */
export async function rollback(options: RedeployOptions = {}): Promise<RedeployResult> {
  const host = await openHost(options);
  refuseStaged(host, 'rollback');
  const target = rollbackTarget(host);
  if (!target) throw new BasaltError('not-found', `${host.sysroot} has no rollback deployment`, { hint: 'basalt status lists the deployments' });
  return redeploy(host, target, carriedKargs(target.options), options);
}

/**
 * `basalt kargs --append/--delete/--replace`: the current deployment's commit deployed again
 * with edited arguments, as rpm-ostree kargs does; the deployment before the edit stays as the
 * rollback, so an argument that breaks booting can be undone from the boot menu.
 */
export async function editDeploymentKargs(edit: KargsEdit, options: RedeployOptions = {}): Promise<RedeployResult> {
  const host = await openHost(options);
  refuseStaged(host, 'changing kernel arguments');
  const base = host.deployments[0] ?? host.current;
  const kargs = editKargs(carriedKargs(base.options), edit);
  return redeploy(host, base, kargs, options);
}

/** The current default's arguments (as carried into the next deployment). */
export async function currentKargs(options: HostOptions = {}): Promise<string[]> {
  const host = await openHost(options);
  return carriedKargs((host.deployments[0] ?? host.current).options);
}

async function redeploy(host: Host, from: Deployment, kargs: string[], options: RedeployOptions): Promise<RedeployResult> {
  const origin = await readOrigin(host.sysroot, from);
  // The deploy drops deployments (the rollback target's old copy, for one): their entries go first.
  await removeDoomedEntries(host, options.espDir);
  const deployed = await deployCommit(host.sysroot, from.checksum, { stateroot: from.stateroot, kargs, origin });
  if (!deployed.deployment) throw new BasaltError('tool', `ostree did not write deployment ${deployed.id}`);
  await crashPoint('ostree-deployed');
  const result: RedeployResult = { from: deploymentKey(from), id: deployed.id, deployment: deployed.deployment, kargs: deployed.kargs };
  const esp = await syncEsp(host, options.espDir);
  if (esp) result.esp = esp;
  return result;
}
