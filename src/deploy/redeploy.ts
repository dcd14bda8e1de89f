import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BasaltError } from '../oci/errors.js';
import { writeFileAtomic } from '../oci/fsutil.js';
import { runOstree } from './ostree-tool.js';
import { DEPLOYMENT_KARG, deploymentKargValue, listDeployments, nextDeploySerial, repoOf, type Deployment } from './sysroot.js';

export interface CommitDeployOptions {
  stateroot: string;
  /**
   * The complete kernel arguments (without ostree= and basalt.deployment=, which are added).
   * Given with --karg-none: ostree would otherwise start from the merge deployment's arguments
   * and --karg-append would repeat them.
   */
  kargs: readonly string[];
  /** The origin file's text. */
  origin: string;
  /** Finalise at shutdown (ostree-finalize-staged.service); only on a running system. */
  stage?: boolean;
}

export interface CommitDeployResult {
  /** The new deployment's `CHECKSUM.SERIAL`. */
  id: string;
  /** Present when it was written now (not staged). */
  deployment?: Deployment;
  kargs: string[];
}

/**
 * `ostree admin deploy` of an imported commit as the new default of `stateroot`. ostree does
 * the /etc 3-way merge from the merge deployment (the booted one, else the default), keeps
 * the booted, the merge and pinned deployments and drops the others of the stateroot, and
 * switches the boot loader configuration in one atomic step (a new /boot/loader.N and
 * /ostree/boot.N, then one rename): cut anywhere, the old or the new set of entries boots.
 */
export async function deployCommit(sysroot: string, commit: string, options: CommitDeployOptions): Promise<CommitDeployResult> {
  const serial = await nextDeploySerial(sysroot, options.stateroot, commit);
  const kargs = [...options.kargs, `${DEPLOYMENT_KARG}=${deploymentKargValue(options.stateroot, commit, serial)}`];
  const originFile = join(repoOf(sysroot), 'tmp', `basalt-origin-${randomBytes(6).toString('hex')}`);
  const args = ['admin', 'deploy', `--sysroot=${sysroot}`, `--os=${options.stateroot}`, `--origin-file=${originFile}`, '--karg-none'];
  for (const k of kargs) args.push(`--karg-append=${k}`);
  if (options.stage) args.push('--stage');
  args.push(commit);
  try {
    await writeFileAtomic(originFile, options.origin);
    await runOstree(args, { what: `deploying ${commit} to ${sysroot}` });
  } finally {
    await rm(originFile, { force: true });
  }
  const id = `${commit}.${serial}`;
  if (options.stage) return { id, kargs };
  const deployment = (await listDeployments(sysroot)).find((d) => d.stateroot === options.stateroot && d.checksum === commit && d.deploySerial === serial);
  if (!deployment) throw new BasaltError('tool', `ostree deployed ${commit} but no boot entry for deployment ${id} was found in ${sysroot}/boot/loader/entries`);
  return { id, deployment, kargs };
}
