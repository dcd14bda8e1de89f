import type { TransportOptions } from '../../oci/transport.js';
import { BasaltError } from '../../oci/errors.js';
import { estimateEspSize } from '../../media/fat.js';
import { estimateExt4Size } from '../../media/ext4.js';
import { MiB } from '../../media/sizes.js';
import { runTool } from '../../media/run-tool.js';
import type { ImportEvent, SourceCheck } from '../import.js';
import { installToDiskImage, type InstallToDiskResult, type StagedInstall } from '../to-disk.js';
import { checkDiskSize, selectTargetDisk, type DiskChoice, type DiskInfo } from './disks.js';
import { configureDeployment } from './configure.js';
import { planKickstart, type KickstartPlan } from './plan.js';
import { runPost, runPre, type ScriptResult } from './scripts.js';
import type { FinishAction, Kickstart, KsWarning } from './types.js';

export interface KickstartRunOptions {
  /** The device the installer booted from: never written, never chosen. */
  bootMedium?: string;
  /** Install this image (e.g. `oci:/run/install/repo/image:TAG`) instead of pulling --url, which stays the update source. */
  embeddedImage?: string;
  transport?: TransportOptions;
  /** Signature policy check (left out with ostreecontainer --no-signature-verification). */
  checkSource?: SourceCheck;
  /** The disks to choose from when the kickstart names none (default: lsblk's). */
  inventory?: () => Promise<DiskInfo[]>;
  onProgress?: (event: ImportEvent) => void;
  /** Each step as it starts, for the CLI to show. */
  onStep?: (step: string) => void;
  /** A warning found while installing (a setting the image cannot honour, a failed script without --erroronfail). */
  onWarning?: (warning: KsWarning) => void;
  /** Where the tree is staged (default: $TMPDIR for devices, beside a disk image file). */
  workDir?: string;
}

export interface KickstartResult {
  plan: KickstartPlan;
  disk: DiskChoice;
  install: InstallToDiskResult;
  scripts: ScriptResult[];
  warnings: KsWarning[];
}

function scriptFailed(ks: Kickstart, r: ScriptResult): BasaltError {
  const tail = r.output.trim().split('\n').slice(-5).join('\n');
  return new BasaltError('tool', `%${r.kind} at ${ks.source}:${r.line} failed (exit ${r.exitCode}) and has --erroronfail${tail ? `:\n${tail}` : ''}`, { hint: 'fix the script; nothing was written to the disk' });
}

/**
 * Runs a kickstart: picks the disk, fetches and stages the image, checks the disk's size, runs
 * %pre, applies the settings, runs %post, and only then writes the disk. Anything that fails
 * before the last step leaves every disk untouched.
 */
export async function runKickstart(ks: Kickstart, options: KickstartRunOptions = {}): Promise<KickstartResult> {
  const plan = planKickstart(ks, options.embeddedImage ? { embeddedImage: options.embeddedImage } : {});
  const step = options.onStep ?? (() => undefined);
  const warnings: KsWarning[] = [...ks.warnings];
  const warn = (w: KsWarning): void => {
    warnings.push(w);
    options.onWarning?.(w);
  };
  step('choosing the disk');
  const disk = await selectTargetDisk(ks, { ...(options.bootMedium ? { bootMedium: options.bootMedium } : {}), ...(options.inventory ? { inventory: options.inventory } : {}) });
  const scripts: ScriptResult[] = [];
  const beforeWrite = async (staged: StagedInstall): Promise<void> => {
    const root = Math.max(await estimateExt4Size(staged.sysroot), plan.root.sizeBytes ?? 0);
    const esp = plan.esp.sizeBytes ?? (await estimateEspSize(staged.espDir));
    checkDiskSize(disk.target, root + esp + 2 * MiB);
    for (const s of ks.scripts.filter((x) => x.kind === 'pre')) {
      step(`%pre at line ${s.line}`);
      const r = await runPre(s);
      scripts.push(r);
      if (r.exitCode !== 0 && s.errorOnFail) throw scriptFailed(ks, r);
      if (r.exitCode !== 0) warn({ line: s.line, message: `%pre failed (exit ${r.exitCode}); going on (no --erroronfail)` });
    }
    step('applying users, passwords, keys, services and settings');
    for (const w of await configureDeployment(ks, staged)) warn(w);
    for (const s of ks.scripts.filter((x) => x.kind === 'post')) {
      step(`%post at line ${s.line}${s.nochroot ? ' (--nochroot)' : ''}`);
      const r = await runPost(s, staged);
      scripts.push(r);
      if (r.exitCode !== 0 && s.errorOnFail) throw scriptFailed(ks, r);
      if (r.exitCode !== 0) warn({ line: s.line, message: `%post failed (exit ${r.exitCode}); going on (no --erroronfail)` });
    }
    step(`writing ${disk.target.name}`);
  };
  step(`fetching ${plan.source}`);
  const install = await installToDiskImage(disk.target.path, plan.source, {
    inPlace: true,
    wipe: true, // selectTargetDisk refused a used disk that clearpart does not cover
    stateroot: plan.stateroot,
    targetImgref: plan.updateSource,
    kargs: plan.kargs,
    filesystem: plan.root.filesystem,
    ...(plan.root.sizeBytes !== undefined && !plan.root.grow ? { rootSize: plan.root.sizeBytes } : {}),
    ...(plan.esp.sizeBytes !== undefined ? { espSize: plan.esp.sizeBytes } : {}),
    ...(options.transport ? { transport: options.transport } : {}),
    ...(options.checkSource ? { checkSource: options.checkSource } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.workDir ? { workDir: options.workDir } : {}),
    beforeWrite,
  });
  return { plan, disk, install, scripts, warnings };
}

/** reboot, poweroff or halt, through systemd as Anaconda does at the end of an install. */
export async function finishInstall(action: FinishAction): Promise<void> {
  await runTool('systemctl', [action]);
}
