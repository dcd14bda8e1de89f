import { Command, Option } from 'commander';
import { installToFilesystem } from '../deploy/install.js';
import { installToDiskImage } from '../deploy/to-disk.js';
import { buildDisk, type DiskType } from '../deploy/bib.js';
import { parseByteSize } from '../media/sizes.js';
import type { RootFilesystem } from '../media/disk-image.js';
import { formatHostHuman, readHostStatus } from '../deploy/status.js';
import type { ImportEvent } from '../deploy/import.js';
import { addPlatformOptions, addRegistryOptions, collect, platformOption, sourceDateEpoch, transportOptions } from './common.js';
import { printFormatted, printJson } from './output.js';
import { addPolicyOptions, sourceCheckFrom } from './trust.js';

type Opts = Record<string, unknown>;

/** One line per layer on stderr when it is a terminal; quiet otherwise. */
function importProgress(quiet: boolean): ((e: ImportEvent) => void) | undefined {
  if (quiet || !process.stderr.isTTY) return undefined;
  return (e) => {
    if (e.type === 'layer' && e.state !== 'importing') process.stderr.write(`Layer ${e.index + 1}/${e.count} ${e.diffId.slice(7, 19)} ${e.state === 'cached' ? 'already imported' : 'imported'}\n`);
    else if (e.type === 'merge') process.stderr.write(`Merging ${e.layers} layers\n`);
    else if (e.type === 'committed') process.stderr.write(`Commit ${e.commit}${e.reused ? ' (already merged)' : ''}\n`);
  };
}

export function installCommand(): Command {
  const install = new Command('install').description('install a bootable image on ostree: a root filesystem directory or a disk');
  const toFs = new Command('to-filesystem')
    .description('install IMAGE into the directory ROOT, which becomes a root filesystem (no mounts, no loop devices)')
    .argument('<root>', 'directory to install into (empty, or without a deployment in the stateroot)')
    .requiredOption('--source-imgref <image>', 'image to install (docker://…, oci:DIR:TAG, oci-archive:…, containers-storage:…, or a local store name)')
    .option('--karg <arg>', 'extra kernel argument (repeatable)', collect, [])
    .option('--root-mount-spec <spec>', 'root= kernel argument value, e.g. UUID=… or PARTUUID=…')
    .option('--root-ssh-authorized-keys <file>', 'SSH public keys for root')
    .option('--stateroot <name>', 'ostree stateroot (osname)', 'default')
    .option('--target-imgref <image>', 'the image the installed system updates from (default: --source-imgref)')
    .option('--esp-dir <dir>', 'also write the ESP files (systemd-boot entries, kernels) into this directory')
    .option('--esp-mount-spec <spec>', 'how the installed system finds its ESP (PARTUUID=…, UUID=…): an /etc/fstab line mounts it at /boot/efi')
    .addOption(new Option('--boot-counting <tries>', 'give new boot entries this many tries (systemd-boot boot counting)').argParser((v) => Number(v)))
    .option('--json', 'print the result as JSON')
    .option('-q, --quiet', 'print nothing but errors');
  addPlatformOptions(toFs);
  addRegistryOptions(toFs, '');
  addPolicyOptions(toFs);
  toFs.action(async (root: string, o: Opts) => {
    const platform = platformOption(o);
    const checkSource = await sourceCheckFrom(o);
    const result = await installToFilesystem(root, o.sourceImgref as string, {
      ...(checkSource ? { checkSource } : {}),
      stateroot: o.stateroot as string,
      kargs: o.karg as string[],
      transport: transportOptions(o, ''),
      ...(platform ? { platform } : {}),
      ...(o.rootMountSpec ? { rootMountSpec: o.rootMountSpec as string } : {}),
      ...(o.rootSshAuthorizedKeys ? { rootSshAuthorizedKeys: o.rootSshAuthorizedKeys as string } : {}),
      ...(o.targetImgref ? { targetImgref: o.targetImgref as string } : {}),
      ...(o.espDir ? { espDir: o.espDir as string } : {}),
      ...(o.espMountSpec ? { espMountSpec: o.espMountSpec as string } : {}),
      ...(o.bootCounting !== undefined ? { esp: { bootCountingTries: o.bootCounting as number } } : {}),
      ...(importProgress(Boolean(o.quiet || o.json)) ? { onProgress: importProgress(false) as (e: ImportEvent) => void } : {}),
    });
    if (o.json) return printJson(result);
    if (o.quiet) return;
    const d = result.deployment;
    process.stdout.write(`Installed ${o.sourceImgref as string} (${result.import.manifestDigest}) into ${root}\n`);
    process.stdout.write(`Deployment ${d.stateroot} ${d.checksum}.${d.deploySerial}\n`);
    process.stdout.write(`Kernel arguments: ${result.kargs.join(' ')}\n`);
    process.stdout.write(`ESP files: ${result.espFiles.map((f) => f.path).join(' ')}\n`);
  });
  install.addCommand(toFs);
  install.addCommand(toDiskCommand());
  return install;
}

function toDiskCommand(): Command {
  const toDisk = new Command('to-disk')
    .description('install IMAGE onto a block device or a new raw disk image FILE: GPT, ESP with systemd-boot, ext4 root; no mounts, no loop devices')
    .argument('<device-or-file>', 'a block device (the root partition fills it) or a disk image file to create (raw)')
    .requiredOption('--source-imgref <image>', 'image to install')
    .option('--wipe', 'overwrite a device that holds data, or replace FILE if it exists (the old file stays until the new one is complete)')
    .addOption(new Option('--filesystem <fs>', 'root filesystem (xfs: disk image files only, through a loop mount as root)').choices(['ext4', 'xfs']).default('ext4'))
    .option('--size <size>', 'root filesystem size (e.g. 4G; default: what the image needs plus slack)')
    .option('--karg <arg>', 'extra kernel argument (repeatable)', collect, [])
    .option('--root-ssh-authorized-keys <file>', 'SSH public keys for root')
    .option('--stateroot <name>', 'ostree stateroot (osname)', 'default')
    .option('--target-imgref <image>', 'the image the installed system updates from (default: --source-imgref)')
    .addOption(new Option('--boot-counting <tries>', 'give new boot entries this many tries').argParser((v) => Number(v)))
    .option('--json', 'print the result as JSON')
    .option('-q, --quiet', 'print nothing but errors');
  addPlatformOptions(toDisk);
  addRegistryOptions(toDisk, '');
  addPolicyOptions(toDisk);
  toDisk.action(async (file: string, o: Opts) => {
    // A policy that does not load fails before anything is written.
    const checkSource = await sourceCheckFrom(o);
    const platform = platformOption(o);
    const epoch = sourceDateEpoch();
    const result = await installToDiskImage(file, o.sourceImgref as string, {
      ...(checkSource ? { checkSource } : {}),
      wipe: Boolean(o.wipe),
      filesystem: o.filesystem as RootFilesystem,
      stateroot: o.stateroot as string,
      kargs: o.karg as string[],
      transport: transportOptions(o, ''),
      ...(platform ? { platform } : {}),
      ...(o.size ? { rootSize: parseByteSize(o.size as string, '--size') } : {}),
      ...(o.rootSshAuthorizedKeys ? { rootSshAuthorizedKeys: o.rootSshAuthorizedKeys as string } : {}),
      ...(o.targetImgref ? { targetImgref: o.targetImgref as string } : {}),
      ...(o.bootCounting !== undefined ? { esp: { bootCountingTries: o.bootCounting as number } } : {}),
      ...(epoch !== undefined ? { sourceDateEpoch: epoch } : {}),
      ...(importProgress(Boolean(o.quiet || o.json)) ? { onProgress: importProgress(false) as (e: ImportEvent) => void } : {}),
    });
    if (o.json) return printJson(result);
    if (!o.quiet) process.stdout.write(`Installed ${o.sourceImgref as string} (${result.import.manifestDigest}) onto ${result.disk} (${result.size} bytes, root PARTUUID ${result.rootPartUuid})\n`);
  });
  return toDisk;
}

/** `basalt disk`: bootc-image-builder's job. */
export function diskCommand(): Command {
  const disk = new Command('disk')
    .description('make a bootable disk image from IMAGE (bootc-image-builder\'s job), customised by a config.toml')
    .argument('<image>', 'image to install (any basalt image name)')
    .addOption(new Option('--type <type>', 'disk format').choices(['raw', 'qcow2', 'vmdk']).default('qcow2'))
    .option('--config <file>', 'bootc-image-builder config.toml: users, kernel arguments, filesystem sizes')
    .option('--size <size>', 'root filesystem size (e.g. 10G)')
    .addOption(new Option('--rootfs <fs>', 'root filesystem, as bootc-image-builder\'s --rootfs (xfs: through a loop mount, as root)').choices(['ext4', 'xfs']).default('ext4'))
    .requiredOption('-o, --output <dir>', 'directory for disk.raw / disk.qcow2 / disk.vmdk')
    .option('--target-imgref <image>', 'the image the device will update from (default: IMAGE)')
    .option('--karg <arg>', 'extra kernel argument (repeatable)', collect, [])
    .addOption(new Option('--boot-counting <tries>', 'give the boot entry this many tries (systemd-boot boot counting; 0: off)').argParser((v) => Number(v)))
    .option('--json', 'print the result as JSON')
    .option('-q, --quiet', 'print nothing but errors');
  addPlatformOptions(disk);
  addRegistryOptions(disk, '');
  disk.action(async (image: string, o: Opts) => {
    const platform = platformOption(o);
    const epoch = sourceDateEpoch();
    const result = await buildDisk(image, o.output as string, {
      type: o.type as DiskType,
      filesystem: o.rootfs as RootFilesystem,
      kargs: o.karg as string[],
      transport: transportOptions(o, ''),
      ...(platform ? { platform } : {}),
      ...(o.config ? { configFile: o.config as string } : {}),
      ...(o.size ? { size: parseByteSize(o.size as string, '--size') } : {}),
      ...(o.targetImgref ? { targetImgref: o.targetImgref as string } : {}),
      ...(o.bootCounting !== undefined ? { esp: { bootCountingTries: o.bootCounting as number } } : {}),
      ...(epoch !== undefined ? { sourceDateEpoch: epoch } : {}),
      ...(importProgress(Boolean(o.quiet || o.json)) ? { onProgress: importProgress(false) as (e: ImportEvent) => void } : {}),
    });
    if (o.json) return printJson(result);
    if (!o.quiet) process.stdout.write(`${result.output}\n`);
  });
  return disk;
}

export function statusCommand(): Command {
  return new Command('status')
    .description('show the deployments of this system (or of --sysroot DIR): booted, staged, rollback')
    .addOption(new Option('--format <format>', 'output format').choices(['human', 'json', 'yaml']).default('human'))
    .option('--json', 'same as --format json')
    .option('--sysroot <dir>', 'read an installed root filesystem instead of the running system')
    .option('--booted', 'show only the booted (or, for --sysroot, the default) deployment')
    .option('--esp <dir>', 'the ESP, for boot counting states (default: /boot/efi when booted)')
    .action(async (o: Opts) => {
      const host = await readHostStatus({ ...(o.sysroot ? { sysroot: o.sysroot as string } : {}), ...(o.esp ? { espDir: o.esp as string } : {}) });
      const format = o.json ? 'json' : (o.format as string);
      if (o.booted) {
        const only = host.status.booted ?? host.status.default;
        return await printFormatted(only, format, () => formatHostHuman({ ...host, status: { ...host.status, staged: null, rollback: null } }));
      }
      await printFormatted(host, format, () => formatHostHuman(host));
    });
}
