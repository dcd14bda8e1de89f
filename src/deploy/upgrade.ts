import { BasaltError } from '../oci/errors.js';
import { readImage, serializeImage, type Image } from '../oci/image.js';
import type { Platform } from '../oci/manifest.js';
import type { TransportOptions } from '../oci/transport.js';
import { openSource } from '../oci/transports/index.js';
import { parseGVariantString } from './gvariant-text.js';
import { importImage, imageRef, imageVersion, META, type ImportEvent, type ImportResult, type SourceCheck } from './import.js';
import { kargsOfCommit, unameArchitecture } from './kargs.js';
import { applyImageKargsDiff, carriedKargs } from './kargs-edit.js';
import { metadataKey } from './ostree-tool.js';
import { formatOrigin, imageNameOf, type ImageSpec } from './origin.js';
import { deployCommit } from './redeploy.js';
import { imageOf, openHost, syncEsp, type Host, type HostOptions } from './host.js';
import { isStagedLocked, lockStaged, unlockStaged } from './staged-lock.js';
import { checkUpdateAllowed } from './update-policy.js';
import { isKnownBadImage } from './bad-images.js';
import { repoOf, type Deployment } from './sysroot.js';
import type { MirrorResult } from './bootentries.js';
import { crashPoint } from './crash-points.js';
import { removeDoomedEntries } from './esp-prune.js';

export interface UpdateOptions extends HostOptions {
  /**
   * Deploy now instead of staging (a sysroot directory is always deployed now: only a
   * running system can finalise a staged deployment at its shutdown).
   */
  apply?: boolean;
  /** Stage and lock: ostree will not finalise it until `--from-downloaded` unlocks it. */
  downloadOnly?: boolean;
  /** Write boot entries into this directory instead of the mounted ESP. */
  espDir?: string;
  transport?: TransportOptions;
  platform?: Platform;
  onProgress?: (event: ImportEvent) => void;
  /** The signature policy check (the trust module's), run before anything is written. */
  checkSource?: SourceCheck;
}

export interface UpdateResult {
  /** False when the image is what the system already runs (or has staged): nothing written. */
  changed: boolean;
  staged: boolean;
  locked: boolean;
  /** The new deployment's CHECKSUM.SERIAL. */
  id?: string;
  deployment?: Deployment;
  /** The image the system updates from after this (the origin). */
  target: ImageSpec;
  /** Where the image was read from (differs from target for upgrade --from FILE). */
  source: string;
  manifestDigest: string;
  previousDigest: string | null;
  version: string | null;
  kargs?: string[];
  import?: Omit<ImportResult, 'ref'>;
  esp?: MirrorResult;
}

async function digestOf(host: Host, checksum: string): Promise<string | null> {
  const v = await metadataKey(repoOf(host.sysroot), checksum, META.manifestDigest);
  return v === undefined ? null : parseGVariantString(v);
}

/** The manifest digest of the staged deployment, when one is staged. */
async function stagedDigest(host: Host): Promise<string | null> {
  return host.staged ? digestOf(host, host.staged.slice(0, 64)) : null;
}

export interface CheckResult {
  available: boolean;
  target: ImageSpec;
  currentDigest: string | null;
  manifestDigest: string;
  version: string | null;
}

/** `upgrade --check`: reads the manifest and config only; writes nothing. */
export async function checkForUpdate(options: UpdateOptions = {}): Promise<CheckResult> {
  const host = await openHost(options);
  const target = await imageOf(host.sysroot, host.current);
  const source = await openSource(imageNameOf(target), options.transport ?? {});
  try {
    const image = await readImage(source, options.platform ? { platform: options.platform } : {});
    const manifestDigest = serializeImage(image).manifest.digest;
    const currentDigest = (await stagedDigest(host)) ?? (await digestOf(host, host.deployments[0]?.checksum ?? host.current.checksum));
    return { available: manifestDigest !== currentDigest, target, currentDigest, manifestDigest, version: imageVersion(image) ?? null };
  } finally {
    await source.close();
  }
}

/** `basalt upgrade`: the image named in the origin, again. */
export async function upgrade(options: UpdateOptions = {}): Promise<UpdateResult> {
  const host = await openHost(options);
  const target = await imageOf(host.sysroot, host.current);
  return updateTo(host, imageNameOf(target), target, options, false);
}

/** `basalt upgrade --from FILE`: an oci-archive (a USB stick); the origin stays as it is. */
export async function upgradeFromArchive(file: string, options: UpdateOptions = {}): Promise<UpdateResult> {
  const host = await openHost(options);
  const target = await imageOf(host.sysroot, host.current);
  return updateTo(host, `oci-archive:${file}`, target, options, false);
}

/** `basalt switch`: deploys another image and makes it the one the system updates from. */
export async function switchImage(target: ImageSpec, options: UpdateOptions = {}): Promise<UpdateResult> {
  const host = await openHost(options);
  const current = await imageOf(host.sysroot, host.current);
  const sameTarget = current.image === target.image && current.transport === target.transport;
  return updateTo(host, imageNameOf(target), target, options, !sameTarget);
}

async function updateTo(host: Host, sourceName: string, target: ImageSpec, options: UpdateOptions, originChanges: boolean): Promise<UpdateResult> {
  const stage = host.isBooted && (!options.apply || Boolean(options.downloadOnly));
  if (options.downloadOnly && !host.isBooted)
    throw new BasaltError('usage', '--download-only stages a deployment, which only a running system can do', { hint: 'leave out --sysroot, or leave out --download-only' });
  if (options.downloadOnly && options.apply) throw new BasaltError('usage', '--download-only and --apply exclude each other');
  const source = await openSource(sourceName, options.transport ?? {});
  let image: Image;
  try {
    image = await readImage(source, options.platform ? { platform: options.platform } : {});
    const manifestDigest = serializeImage(image).manifest.digest;
    const previousDigest = await digestOf(host, host.current.checksum);
    const base = { target, source: sourceName, manifestDigest, previousDigest, version: imageVersion(image) ?? null };
    // Already running it (and nothing newer staged or deployed), or already staged: nothing to do.
    const defaultDigest = host.deployments[0] ? await digestOf(host, host.deployments[0].checksum) : null;
    const pending = (await stagedDigest(host)) ?? (host.deployments[0] !== host.current ? defaultDigest : previousDigest);
    if (!originChanges && pending === manifestDigest) {
      // --apply of what is already staged: unlock it so the reboot finalises it.
      if (options.apply && host.staged) await unlockStaged();
      const result: UpdateResult = { ...base, changed: false, staged: Boolean(host.staged), locked: host.staged !== undefined && !options.apply && (await isStagedLocked()) };
      // A run killed between ostree's deploy and the end of the ESP mirror left the deployment
      // without (all of) its entries: the rerun finds nothing to deploy and finishes the mirror.
      if (!stage) {
        const esp = await syncEsp(host, options.espDir);
        if (esp) result.esp = esp;
      }
      return result;
    }
    // An image that failed its health checks here is not deployed again (the timer would
    // otherwise stage it every 8 hours and roll back every time).
    if (host.isBooted && (await isKnownBadImage(manifestDigest)))
      throw new BasaltError('policy', `${sourceName} (${manifestDigest}) failed its health checks on this device before; not deploying it again`, {
        hint: `publish a fixed image, or run basalt health forget ${manifestDigest} to try this one again`,
      });
    await checkUpdateAllowed({ source, image, manifestDigest, reference: sourceName }, options.checkSource);

    const repo = repoOf(host.sysroot);
    const imported = await importImage(repo, image, { imageName: sourceName, ref: imageRef(imageNameOf(target)), ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
    const arch = unameArchitecture(image.config.architecture);
    const oldImageKargs = await kargsOfCommit(repo, host.current.checksum, arch);
    const newImageKargs = await kargsOfCommit(repo, imported.commit, arch);
    const kargs = applyImageKargsDiff(carriedKargs(host.current.options), oldImageKargs, newImageKargs);
    if (options.downloadOnly) await lockStaged();
    await removeDoomedEntries(host, options.espDir);
    const deployed = await deployCommit(host.sysroot, imported.commit, { stateroot: host.stateroot, kargs, origin: formatOrigin(target, imported.ref), stage });
    const { ref: _ref, ...importSummary } = imported;
    const result: UpdateResult = { ...base, changed: true, staged: stage, locked: Boolean(options.downloadOnly), id: deployed.id, kargs: deployed.kargs, import: importSummary };
    if (deployed.deployment) result.deployment = deployed.deployment;
    if (!stage) {
      await crashPoint('ostree-deployed');
      const esp = await syncEsp(host, options.espDir);
      if (esp) result.esp = esp;
    }
    return result;
  } finally {
    await source.close();
  }
}
