import { Command, Option } from 'commander';
import { installToFilesystem } from '../deploy/install.js';
import { formatHostHuman, readHostStatus } from '../deploy/status.js';
import type { ImportEvent } from '../deploy/import.js';
import { addPlatformOptions, addRegistryOptions, collect, platformOption, transportOptions } from './common.js';
import { printFormatted, printJson } from './output.js';

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
    .addOption(new Option('--boot-counting <tries>', 'give new boot entries this many tries (systemd-boot boot counting)').argParser((v) => Number(v)))
    .option('--json', 'print the result as JSON')
    .option('-q, --quiet', 'print nothing but errors');
  addPlatformOptions(toFs);
  addRegistryOptions(toFs, '');
  toFs.action(async (root: string, o: Opts) => {
    const platform = platformOption(o);
    const result = await installToFilesystem(root, o.sourceImgref as string, {
      stateroot: o.stateroot as string,
      kargs: o.karg as string[],
      transport: transportOptions(o, ''),
      ...(platform ? { platform } : {}),
      ...(o.rootMountSpec ? { rootMountSpec: o.rootMountSpec as string } : {}),
      ...(o.rootSshAuthorizedKeys ? { rootSshAuthorizedKeys: o.rootSshAuthorizedKeys as string } : {}),
      ...(o.targetImgref ? { targetImgref: o.targetImgref as string } : {}),
      ...(o.espDir ? { espDir: o.espDir as string } : {}),
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
  return install;
}

export function statusCommand(): Command {
  return new Command('status')
    .description('show the deployments of this system (or of --sysroot DIR): booted, staged, rollback')
    .addOption(new Option('--format <format>', 'output format').choices(['human', 'json', 'yaml']).default('human'))
    .option('--json', 'same as --format json')
    .option('--sysroot <dir>', 'read an installed root filesystem instead of the running system')
    .option('--booted', 'show only the booted (or, for --sysroot, the default) deployment')
    .action(async (o: Opts) => {
      const host = await readHostStatus(o.sysroot ? { sysroot: o.sysroot as string } : {});
      const format = o.json ? 'json' : (o.format as string);
      if (o.booted) {
        const only = host.status.booted ?? host.status.default;
        return printFormatted(only, format, () => formatHostHuman({ ...host, status: { ...host.status, staged: null, rollback: null } }));
      }
      printFormatted(host, format, () => formatHostHuman(host));
    });
}
