import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeFileAtomic } from '../oci/fsutil.js';
import type { Platform } from '../oci/manifest.js';
import type { TransportOptions } from '../oci/transport.js';
import { importImageByName, type ImportEvent, type ImportResult, type SourceCheck } from './import.js';
import { kargsOfCommit, unameArchitecture } from './kargs.js';
import { formatOrigin, imageSpecOf, type ImageSpec } from './origin.js';
import { DEPLOYMENT_KARG, deploymentKargValue, nextDeploySerial, ostreeDeploy, repoOf, type Deployment } from './sysroot.js';

export interface DeployImageOptions {
  stateroot: string;
  /** Extra kernel arguments, after the image's kargs.d ones. */
  kargs?: readonly string[];
  /** `root=` value (`UUID=…`, `PARTUUID=…`, `LABEL=…`); left out when not given. */
  rootMountSpec?: string;
  /** The image the deployment updates from (default: the image deployed). */
  targetImgref?: string;
  transport?: TransportOptions;
  platform?: Platform;
  onProgress?: (event: ImportEvent) => void;
  /** Called with the opened source before anything is imported; throwing refuses the deployment. */
  checkSource?: SourceCheck;
}

export interface DeployImageResult {
  deployment: Deployment;
  /** Every kernel argument given to ostree, in order. */
  kargs: string[];
  /** Those that came from the image's kargs.d. */
  imageKargs: string[];
  target: ImageSpec;
  import: Omit<ImportResult, 'image'>;
}

/**
 * Imports `imageName` into the sysroot's repository and deploys it as the new default of
 * `stateroot`. Kernel arguments: root= (when given), rw (ostree needs a writable root for
 * /etc and /var), the image's kargs.d, the caller's, and `basalt.deployment=STATEROOT/CSUM.SERIAL`
 * naming the deployment so an initramfs hook can recreate a boot link ostree deleted.
 */
export async function deployImage(sysroot: string, imageName: string, options: DeployImageOptions): Promise<DeployImageResult> {
  const repo = repoOf(sysroot);
  const imported = await importImageByName(repo, imageName, {
    ...(options.transport ? { transport: options.transport } : {}),
    ...(options.platform ? { platform: options.platform } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.checkSource ? { checkSource: options.checkSource } : {}),
  });
  const { image, ...importResult } = imported;
  const imageKargs = await kargsOfCommit(repo, imported.commit, unameArchitecture(image.config.architecture));
  const serial = await nextDeploySerial(sysroot, options.stateroot, imported.commit);
  const kargs = [
    ...(options.rootMountSpec ? [`root=${options.rootMountSpec}`] : []),
    'rw',
    ...imageKargs,
    ...(options.kargs ?? []),
    `${DEPLOYMENT_KARG}=${deploymentKargValue(options.stateroot, imported.commit, serial)}`,
  ];
  const target = imageSpecOf(options.targetImgref ?? imageName);
  const originFile = join(repo, 'tmp', `basalt-origin-${randomBytes(6).toString('hex')}`);
  try {
    await writeFileAtomic(originFile, formatOrigin(target, imported.ref));
    const deployment = await ostreeDeploy(sysroot, imported.ref, imported.commit, { stateroot: options.stateroot, kargs, originFile });
    return { deployment, kargs, imageKargs, target, import: importResult };
  } finally {
    await rm(originFile, { force: true });
  }
}
