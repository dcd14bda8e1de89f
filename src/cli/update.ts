import { spawn } from 'node:child_process';
import { Command, Option } from 'commander';
import { BasaltError } from '../oci/errors.js';
import type { ImportEvent } from '../deploy/import.js';
import { checkForUpdate, switchImage, upgrade, upgradeFromArchive, type UpdateOptions, type UpdateResult } from '../deploy/upgrade.js';
import { currentKargs, editDeploymentKargs, rollback, type RedeployResult } from '../deploy/rollback.js';
import { cleanup } from '../deploy/cleanup.js';
import { setPinned } from '../deploy/pin.js';
import { openHost, syncEsp } from '../deploy/host.js';
import { unlockStaged } from '../deploy/staged-lock.js';
import { imageSpecOf } from '../deploy/origin.js';
import { addRegistryOptions, collect, transportOptions } from './common.js';
import { addPolicyOptions, sourceCheckFrom } from './trust.js';
import { printJson } from './output.js';

type Opts = Record<string, unknown>;

const sysrootOption = (): Option => new Option('--sysroot <dir>', 'act on an installed root filesystem directory instead of the running system (deploys at once, never stages or reboots)');
const espOption = (): Option => new Option('--esp <dir>', 'mirror boot entries into this directory (default: the ESP mounted at /boot/efi on a running system)');

function hostOptions(o: Opts): { sysroot?: string; espDir?: string } {
  return { ...(o.sysroot ? { sysroot: o.sysroot as string } : {}), ...(o.esp ? { espDir: o.esp as string } : {}) };
}

function progress(quiet: boolean): ((e: ImportEvent) => void) | undefined {
  if (quiet || !process.stderr.isTTY) return undefined;
  return (e) => {
    if (e.type === 'layer' && e.state !== 'importing') process.stderr.write(`Layer ${e.index + 1}/${e.count} ${e.diffId.slice(7, 19)} ${e.state === 'cached' ? 'already here' : 'imported'}\n`);
    else if (e.type === 'committed') process.stderr.write(`Commit ${e.commit}\n`);
  };
}

/** Reboots a running system (the CLI's job: the library never ends the process it runs in). */
async function reboot(): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('systemctl', ['reboot'], { stdio: 'inherit' });
    child.on('error', (e) => reject(new BasaltError('tool', `cannot run systemctl reboot: ${e.message}`, { cause: e })));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new BasaltError('tool', `systemctl reboot exited ${code ?? 'by a signal'}`))));
  });
}

function describeUpdate(r: UpdateResult): string {
  const name = r.target.transport === 'registry' ? r.target.image : `${r.target.transport}:${r.target.image}`;
  if (!r.changed) return r.staged ? `${name} ${r.manifestDigest} is already staged${r.locked ? ' (locked: basalt upgrade --from-downloaded applies it)' : ''}\n` : `No update: ${name} is at ${r.manifestDigest}\n`;
  const how = r.locked ? 'Downloaded and staged (locked; basalt upgrade --from-downloaded applies it at the next shutdown)' : r.staged ? 'Staged (applied at the next shutdown or reboot)' : 'Deployed';
  const layers = r.import ? ` — ${r.import.imported} new layer(s), ${r.import.layers.length - r.import.imported} already here` : '';
  return `${how}: ${name}${r.version ? ` ${r.version}` : ''} ${r.manifestDigest}${layers}\nDeployment ${r.id ?? ''}\n`;
}

async function finishUpdate(r: UpdateResult, o: Opts, isSysroot: boolean): Promise<void> {
  if (o.json) printJson(r);
  else if (!o.quiet) process.stdout.write(describeUpdate(r));
  if (o.apply && !isSysroot && (r.changed || r.staged)) await reboot();
}

async function updateOptions(o: Opts): Promise<UpdateOptions> {
  const p = progress(Boolean(o.quiet || o.json));
  // The signature policy is loaded (and a broken one refused) before anything is read.
  const checkSource = o.check ? undefined : await sourceCheckFrom(o);
  return { ...hostOptions(o), apply: Boolean(o.apply), transport: transportOptions(o, ''), ...(p ? { onProgress: p } : {}), ...(checkSource ? { checkSource } : {}) };
}

/** What upgrade and switch share: output, the system acted on, registry access, signature policy. */
function addImageUpdateOptions(cmd: Command): void {
  cmd.option('--json', 'print the result as JSON').option('-q, --quiet', 'print nothing but errors').addOption(sysrootOption()).addOption(espOption());
  addRegistryOptions(cmd, '');
  addPolicyOptions(cmd);
}

export function upgradeCommand(): Command {
  const cmd = new Command('upgrade')
    .description('update to the newest version of the image this system follows: staged for the next shutdown, or --apply to deploy and reboot now')
    .option('--check', 'only say whether an update is available (reads the manifest, writes nothing)')
    .option('--apply', 'deploy now and reboot into it')
    .option('--download-only', 'download and stage, locked: nothing changes at shutdown until --from-downloaded')
    .option('--from-downloaded', 'unlock the update staged by --download-only (with --apply: and reboot into it)')
    .option('--from <file>', 'update from an oci-archive FILE (a USB stick) instead of the network; the system keeps following its image');
  addImageUpdateOptions(cmd);
  cmd.action(async (o: Opts) => {
    const isSysroot = Boolean(o.sysroot);
    if (o.check) {
      const r = await checkForUpdate(await updateOptions(o));
      if (o.json) return printJson(r);
      if (!o.quiet) process.stdout.write(r.available ? `Update available: ${r.target.image} ${r.version ?? ''} ${r.manifestDigest}\n` : `No update: ${r.target.image} is at ${r.manifestDigest}\n`);
      return;
    }
    if (o.fromDownloaded) {
      const host = await openHost(hostOptions(o));
      if (!host.staged) throw new BasaltError('not-found', 'no staged deployment to apply', { hint: 'run basalt upgrade --download-only first (a staged update does not survive a reboot)' });
      const wasLocked = await unlockStaged();
      if (o.json) printJson({ staged: host.staged, unlocked: wasLocked });
      else if (!o.quiet) process.stdout.write(`${wasLocked ? 'Unlocked' : 'Already unlocked'}: ${host.staged} is applied at the next shutdown or reboot\n`);
      if (o.apply) await reboot();
      return;
    }
    const options: UpdateOptions = { ...(await updateOptions(o)), downloadOnly: Boolean(o.downloadOnly) };
    const r = o.from ? await upgradeFromArchive(o.from as string, options) : await upgrade(options);
    await finishUpdate(r, o, isSysroot);
  });
  return cmd;
}

const TRANSPORTS = ['registry', 'oci', 'oci-archive', 'containers-storage'];

export function switchCommand(): Command {
  const cmd = new Command('switch')
    .description('change the image this system follows and update to it (staged, or --apply to deploy and reboot now)')
    .argument('<image>', 'the image: HOST/REPO:TAG for registry, DIR:TAG for oci, FILE for oci-archive, NAME for containers-storage')
    .addOption(new Option('--transport <transport>', 'where IMAGE is').choices(TRANSPORTS).default('registry'))
    .option('--apply', 'deploy now and reboot into it');
  addImageUpdateOptions(cmd);
  cmd.action(async (image: string, o: Opts) => {
    const transport = o.transport as string;
    const spec = transport === 'registry' ? imageSpecOf(`docker://${image.replace(/^docker:\/\//, '')}`) : { image, transport };
    const r = await switchImage(spec, await updateOptions(o));
    await finishUpdate(r, o, Boolean(o.sysroot));
  });
  return cmd;
}

function printRedeploy(r: RedeployResult, o: Opts, what: string): void {
  if (o.json) return printJson(r);
  if (!o.quiet) process.stdout.write(`${what}: deployment ${r.id} (from ${r.from}) is the default\nKernel arguments: ${r.kargs.join(' ')}\n`);
}

export function rollbackCommand(): Command {
  return new Command('rollback')
    .description('make the rollback deployment the default again (with --apply: and reboot into it)')
    .option('--apply', 'reboot into it now')
    .option('--json', 'print the result as JSON')
    .option('-q, --quiet', 'print nothing but errors')
    .addOption(sysrootOption())
    .addOption(espOption())
    .action(async (o: Opts) => {
      const r = await rollback(hostOptions(o));
      printRedeploy(r, o, 'Rolled back');
      if (o.apply && !o.sysroot) await reboot();
    });
}

export function kargsCommand(): Command {
  return new Command('kargs')
    .description('show or change the kernel arguments; changes make a new deployment (the old one stays as rollback) and survive upgrades')
    .option('--append <arg>', 'add NAME[=VALUE] (repeatable)', collect, [])
    .option('--delete <arg>', 'remove NAME (every value) or NAME=VALUE (repeatable)', collect, [])
    .option('--replace <arg>', 'NAME=VALUE replaces every NAME; NAME=OLD=NEW replaces one value (repeatable)', collect, [])
    .option('--json', 'print the result as JSON')
    .option('-q, --quiet', 'print nothing but errors')
    .addOption(sysrootOption())
    .addOption(espOption())
    .action(async (o: Opts) => {
      const edit = { append: o.append as string[], delete: o.delete as string[], replace: o.replace as string[] };
      if (edit.append.length + edit.delete.length + edit.replace.length === 0) {
        const kargs = await currentKargs(hostOptions(o));
        if (o.json) printJson(kargs);
        else process.stdout.write(`${kargs.join(' ')}\n`);
        return;
      }
      printRedeploy(await editDeploymentKargs(edit, hostOptions(o)), o, 'Kernel arguments changed');
    });
}

export function cleanupCommand(): Command {
  return new Command('cleanup')
    .description('remove deployments other than booted, pending and rollback (pinned ones stay), unused image and layer commits, and unreferenced objects')
    .option('--json', 'print the result as JSON')
    .option('-q, --quiet', 'print nothing but errors')
    .addOption(sysrootOption())
    .addOption(espOption())
    .action(async (o: Opts) => {
      const r = await cleanup(hostOptions(o));
      if (o.json) return printJson(r);
      if (o.quiet) return;
      process.stdout.write(`Removed ${r.undeployed.length} deployment(s)${r.undeployed.length ? `: ${r.undeployed.join(' ')}` : ''}\n`);
      process.stdout.write(`Deleted ${r.refsDeleted.length} ref(s)\n${r.prune ? `${r.prune}\n` : ''}`);
    });
}

function pinCommandOf(pinned: boolean): Command {
  return new Command(pinned ? 'pin' : 'unpin')
    .description(pinned ? 'keep a deployment: updates and cleanup never remove it (ostree pinning)' : 'let updates and cleanup remove a pinned deployment again')
    .argument('[deployment]', 'index in basalt status order (0 = default), ESP entry id, or CHECKSUM[.SERIAL] (default: booted, else default)')
    .option('--json', 'print the result as JSON')
    .addOption(sysrootOption())
    .action(async (deployment: string | undefined, o: Opts) => {
      const r = await setPinned(pinned, { ...hostOptions(o), ...(deployment !== undefined ? { deployment } : {}) });
      if (o.json) return printJson(r);
      process.stdout.write(`${r.id} ${r.changed ? 'is now' : 'was already'} ${pinned ? 'pinned' : 'not pinned'}\n`);
    });
}

/** Hidden: what basalt-esp-mirror.service runs at boot and, after ostree finalises, at shutdown. */
export function internalCommand(): Command {
  const internal = new Command('internal').description('commands basalt\'s own systemd units run');
  internal.addCommand(
    new Command('esp-mirror')
      .description('mirror ostree\'s deployments onto the ESP (systemd-boot entries and kernels)')
      .addOption(sysrootOption())
      .addOption(espOption())
      .action(async (o: Opts) => {
        const host = await openHost(hostOptions(o));
        const r = await syncEsp(host, o.esp as string | undefined);
        if (!r) throw new BasaltError('not-found', 'no ESP to mirror to: nothing mounted at /boot/efi with a loader directory', { hint: 'give --esp DIR' });
        process.stdout.write(`ESP: ${r.entries.length} entries, ${r.written.length} file(s) written, ${r.removed.length} removed\n`);
      }),
  );
  return internal;
}

/** Every command of this group, for main.ts. */
export function updateCommands(): Command[] {
  return [upgradeCommand(), switchCommand(), rollbackCommand(), kargsCommand(), cleanupCommand(), pinCommandOf(true), pinCommandOf(false), internalCommand()];
}
