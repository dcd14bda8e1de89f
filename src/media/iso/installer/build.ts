/**
 * `basalt iso IMAGE --kickstart ks.cfg -o install.iso`: an installer ISO that boots the
 * image's own kernel with an installer initramfs built from the image's dracut, the image's
 * root as a squashfs under a tmpfs overlay, and runs `basalt install kickstart` in
 * basalt-installer.target. Steps: check the kickstart (nothing is written if it is bad),
 * unpack the image, build the initramfs (dracut in systemd-nspawn on the unpacked root),
 * add the installer units, squash the root, make GRUB's BIOS and UEFI images, write the ISO.
 */
import { chmod, copyFile, mkdir, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { runTool as runBuildTool } from '../../../build/run-tool.js';
import { BasaltError, ioError } from '../../../oci/errors.js';
import { copyImage } from '../../../oci/copy.js';
import { unpackImage } from '../../../oci/filesystem.js';
import { makeTempDir } from '../../../oci/fsutil.js';
import { readImage } from '../../../oci/image.js';
import type { TransportOptions } from '../../../oci/transport.js';
import { openDestination, openSource } from '../../../oci/transports/index.js';
import { runTool } from '../../run-tool.js';
import type { Content } from '../tree.js';
import { checkVolumeId, writeNewIso } from '../write.js';
import { readKickstart, type KickstartValidator } from './kickstart-check.js';
import { buildGrubImages } from './grub.js';
import {
  CMDLINE_HOOK, EMBEDDED_REF, GENERATOR, INSTALLER_SCRIPT, INSTALLER_TARGET, ISO_PATHS, LIVE_MODULE_DIR, MODULE_SETUP, SERVICE_UNIT, SETUP_SCRIPT, TARGET_UNIT,
  grubConfig, installerConfig,
} from './live.js';

export type InstallerStep = 'kickstart' | 'unpack' | 'initramfs' | 'rootfs' | 'embed' | 'boot' | 'write';

export interface InstallerIsoOptions {
  image: string;
  kickstart: string;
  /** The installer's own parser: a kickstart it refuses stops the build before anything is written. */
  validateKickstart: KickstartValidator;
  output: string;
  embed?: boolean;
  registriesConf?: string;
  volumeId?: string;
  transport?: TransportOptions;
  sourceDateEpoch?: number;
  /** Parent of the work directory (default: the system's temp dir). */
  workParent?: string;
  onStep?: (step: InstallerStep, detail: string) => void;
}

export interface InstallerIsoReport {
  output: string;
  bytes: number;
  volumeId: string;
  kernelVersion: string;
  rootfsBytes: number;
  initrdBytes: number;
  embedded: boolean;
  /** The kickstart's accepted-but-ignored directives and options, as `FILE:LINE: message`. */
  kickstartWarnings: string[];
  seconds: Record<InstallerStep, number>;
}

export const DEFAULT_VOLUME_ID = 'BASALT-INSTALLER';

async function kernelVersion(root: string): Promise<string> {
  const modules = join(root, 'usr/lib/modules');
  const versions: string[] = [];
  for (const v of await readdir(modules).catch(() => [] as string[])) {
    if (await stat(join(modules, v, 'vmlinuz')).then(() => true, () => false)) versions.push(v);
  }
  if (versions.length !== 1)
    throw new BasaltError('invalid', `the image has ${versions.length} kernels at /usr/lib/modules/KVER/vmlinuz (${versions.join(', ') || 'none'}); an installer needs exactly one`, { hint: 'build the image from a bootable base (basalt base build)' });
  return versions[0] as string;
}

async function requireFile(root: string, path: string, what: string): Promise<void> {
  if (!(await stat(join(root, path)).then(() => true, () => false)))
    throw new BasaltError('invalid', `the image has no ${path} (${what})`, { hint: 'build the image from a bootable base (basalt base build), which has dracut, systemd and basalt' });
}

/** Installer initramfs: the image's dracut with the basalt-live module, run inside the image's root. */
async function buildLiveInitramfs(root: string, kver: string, out: string, epoch: number | undefined): Promise<void> {
  const moduleDir = join(root, 'usr/lib/dracut/modules.d', LIVE_MODULE_DIR);
  await mkdir(moduleDir, { recursive: true });
  await writeFile(join(moduleDir, 'module-setup.sh'), MODULE_SETUP, { mode: 0o755 });
  await writeFile(join(moduleDir, 'basalt-live-cmdline.sh'), CMDLINE_HOOK, { mode: 0o755 });
  await writeFile(join(moduleDir, 'basalt-live-setup.sh'), SETUP_SCRIPT, { mode: 0o755 });
  await writeFile(join(moduleDir, 'basalt-live-generator.sh'), GENERATOR, { mode: 0o755 });
  const inside = '/basalt-live-initrd.img';
  const env = epoch !== undefined ? [`--setenv=SOURCE_DATE_EPOCH=${epoch}`] : [];
  // ostree-prepare-root and basalt's boot-link hook belong to installed systems, not to the live medium.
  await runBuildTool(
    'systemd-nspawn',
    // A machine name of our own: nspawn keeps per-name state under /run/systemd/nspawn/propagate,
    // and two containers both called "root" (the directory's name) trip over each other's.
    ['-q', '--register=no', '--keep-unit', '--resolv-conf=off', '--timezone=off', '--link-journal=no', `--machine=basalt-iso-${process.pid}-${Date.now()}`, ...env, '-D', root,
      'dracut', '--reproducible', '--no-hostonly', '--force', '--add', 'basalt-live', '--omit', 'ostree basalt plymouth', '--kver', kver, inside],
    { what: `dracut (installer initramfs for kernel ${kver})`, debianPackage: 'systemd-container' },
  );
  try {
    await copyFile(join(root, inside), out);
  } catch (e) {
    throw ioError(`taking the initramfs out of ${root}`, e);
  }
  await rm(join(root, inside), { force: true });
  await rm(moduleDir, { recursive: true, force: true });
}

/** The installer's units and settings in the live root (not in what gets installed: that comes from the image). */
async function addInstaller(root: string, registriesConf: string | undefined): Promise<void> {
  const units = join(root, 'etc/systemd/system');
  await mkdir(units, { recursive: true });
  await writeFile(join(units, INSTALLER_TARGET), TARGET_UNIT);
  await writeFile(join(units, 'basalt-installer.service'), SERVICE_UNIT);
  await mkdir(join(root, 'usr/libexec'), { recursive: true });
  await writeFile(join(root, 'usr/libexec/basalt-installer'), INSTALLER_SCRIPT);
  await chmod(join(root, 'usr/libexec/basalt-installer'), 0o755);
  // No update may run on the medium, whatever pulls timers.target in: mask the image's timers.
  for (const timer of await readdir(join(units, 'timers.target.wants')).catch(() => [] as string[])) {
    await rm(join(units, timer), { force: true });
    await symlink('/dev/null', join(units, timer));
  }
  if (registriesConf) {
    await mkdir(join(root, 'etc/containers'), { recursive: true });
    await copyFile(registriesConf, join(root, 'etc/containers/registries.conf'));
  }
}

async function squash(root: string, out: string, epoch: number | undefined): Promise<void> {
  const env = { ...process.env, ...(epoch !== undefined ? { SOURCE_DATE_EPOCH: String(epoch) } : {}) };
  const result = await runTool('mksquashfs', [root, out, '-noappend', '-comp', 'zstd', '-Xcompression-level', '6', '-no-progress', '-quiet', '-wildcards', '-e', 'proc/*', 'sys/*', 'dev/*', 'run/*', 'tmp/*'], { env, allowFailure: true });
  if (result.code !== 0) throw new BasaltError('tool', `mksquashfs of the image's root failed: ${(result.stderr || result.stdout).trim()}`);
}

async function addTree(files: Map<string, Content>, dir: string, under: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await addTree(files, path, `${under}/${entry.name}`);
    else if (entry.isFile()) files.set(`${under}/${entry.name}`, { kind: 'file', path, size: (await stat(path)).size });
  }
}

export async function buildInstallerIso(options: InstallerIsoOptions): Promise<InstallerIsoReport> {
  const volumeId = options.volumeId ?? DEFAULT_VOLUME_ID;
  checkVolumeId(volumeId);
  const seconds = { kickstart: 0, unpack: 0, initramfs: 0, rootfs: 0, embed: 0, boot: 0, write: 0 };
  let clock = Date.now();
  const step = (name: InstallerStep, detail: string): void => {
    options.onStep?.(name, detail);
  };
  const done = (name: InstallerStep): void => {
    seconds[name] = (Date.now() - clock) / 1000;
    clock = Date.now();
  };
  step('kickstart', options.kickstart);
  const ks = await readKickstart(options.kickstart);
  const kickstartWarnings = options.validateKickstart(ks, options.kickstart).warnings.map((w) => `${options.kickstart}${w.line ? `:${w.line}` : ''}: ${w.message}`);
  if (options.registriesConf) await stat(options.registriesConf).catch((e: unknown) => {
    throw (e as NodeJS.ErrnoException).code === 'ENOENT' ? new BasaltError('not-found', `registries.conf ${options.registriesConf} does not exist`) : ioError(`reading ${options.registriesConf}`, e);
  });
  done('kickstart');

  const work = await makeTempDir('basalt-installer-', options.workParent);
  try {
    const root = join(work, 'root');
    step('unpack', options.image);
    const source = await openSource(options.image, options.transport ?? {});
    try {
      await unpackImage(await readImage(source), root);
    } finally {
      await source.close();
    }
    const kver = await kernelVersion(root);
    for (const [p, what] of [['usr/bin/dracut', 'builds the installer initramfs'], ['usr/lib/systemd/systemd', 'runs the installer'], ['usr/bin/basalt', 'installs the image']] as const) await requireFile(root, p, what);
    done('unpack');

    step('initramfs', `kernel ${kver}`);
    const initrd = join(work, 'initrd.img');
    await buildLiveInitramfs(root, kver, initrd, options.sourceDateEpoch);
    const kernel = join(work, 'vmlinuz');
    await copyFile(join(root, 'usr/lib/modules', kver, 'vmlinuz'), kernel);
    done('initramfs');

    step('rootfs', 'squashfs of the image root');
    await addInstaller(root, options.registriesConf);
    const rootfs = join(work, 'rootfs.sfs');
    await squash(root, rootfs, options.sourceDateEpoch);
    await rm(root, { recursive: true, force: true });
    done('rootfs');

    const files = new Map<string, Content>();
    if (options.embed) {
      step('embed', 'the image as an OCI layout on the ISO');
      const layout = join(work, 'layout');
      const src = await openSource(options.image, options.transport ?? {});
      try {
        await copyImage(src, await openDestination(`oci:${layout}:${EMBEDDED_REF}`));
      } finally {
        await src.close();
      }
      await addTree(files, layout, ISO_PATHS.image);
      done('embed');
    }

    step('boot', 'GRUB for BIOS and UEFI');
    const grub = await buildGrubImages(join(work, 'grub'), volumeId, options.sourceDateEpoch);
    done('boot');

    step('write', options.output);
    const fileContent = async (path: string): Promise<Content> => ({ kind: 'file', path, size: (await stat(path)).size });
    files.set(ISO_PATHS.kernel, await fileContent(kernel));
    files.set(ISO_PATHS.initrd, await fileContent(initrd));
    files.set(ISO_PATHS.rootfs, await fileContent(rootfs));
    files.set(ISO_PATHS.kickstart, { kind: 'buffer', data: Buffer.from(ks) });
    files.set(ISO_PATHS.config, { kind: 'buffer', data: Buffer.from(installerConfig({ embedded: options.embed === true, registriesConf: options.registriesConf !== undefined })) });
    files.set(ISO_PATHS.grubCfg, { kind: 'buffer', data: Buffer.from(grubConfig(volumeId, `Install ${basename(options.image)}`)) });
    files.set(ISO_PATHS.biosImage, { kind: 'buffer', data: grub.biosImage });
    files.set(ISO_PATHS.efiImage, await fileContent(grub.efiImage));
    files.set('EFI/BOOT/BOOTX64.EFI', await fileContent(grub.efiBinary));
    const written = await writeNewIso({
      output: options.output,
      volumeId,
      files,
      biosImage: ISO_PATHS.biosImage,
      efiImage: ISO_PATHS.efiImage,
      mbrCode: grub.mbrCode,
      ...(options.sourceDateEpoch !== undefined ? { sourceDateEpoch: options.sourceDateEpoch } : {}),
    });
    done('write');
    return {
      output: options.output,
      bytes: written.size,
      volumeId,
      kernelVersion: kver,
      rootfsBytes: (await stat(rootfs)).size,
      initrdBytes: (await stat(initrd)).size,
      embedded: options.embed === true,
      kickstartWarnings,
      seconds,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

