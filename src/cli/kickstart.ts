import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { ioError } from '../oci/errors.js';
import { finishInstall, parseKickstart, planKickstart, runKickstart, type KickstartPlan, type KsWarning } from '../deploy/kickstart/index.js';
import { formatBytes } from '../media/sizes.js';
import { addRegistryOptions, transportOptions } from './common.js';
import { printJson, warn } from './output.js';
import { addPolicyOptions, sourceCheckFrom } from './trust.js';

type Opts = Record<string, unknown>;

function formatPlan(p: KickstartPlan): string {
  const size = (b: number | undefined, dflt: string): string => (b === undefined ? dflt : formatBytes(b));
  const lines = [
    `Image:           ${p.source}${p.source !== p.updateSource ? ` (updates from ${p.updateSource})` : ''}`,
    `Stateroot:       ${p.stateroot}`,
    `Signatures:      ${p.verifySignatures ? 'checked against the signature policy' : 'not checked (--no-signature-verification)'}`,
    `Disk:            ${p.disks ? p.disks.join(', ') : 'the first disk of the machine (boot medium excluded)'}`,
    `Clear:           ${p.clear === 'none' ? 'nothing (the disk must be empty)' : p.clear === 'all' ? 'the target disk' : p.clear.join(', ')}`,
    `ESP:             ${size(p.esp.sizeBytes, 'sized to its files')}`,
    `Root:            ${p.root.filesystem}, ${p.root.grow ? `fills the disk${p.root.sizeBytes ? ` (at least ${formatBytes(p.root.sizeBytes)})` : ''}` : size(p.root.sizeBytes, '')}`,
    `Users:           ${p.users.join(', ') || 'none'}`,
    `Root password:   ${p.rootPassword}`,
    `SSH keys for:    ${p.sshKeys.join(', ') || 'nobody'}`,
  ];
  if (p.hostname) lines.push(`Hostname:        ${p.hostname}`);
  if (p.timezone) lines.push(`Timezone:        ${p.timezone}`);
  if (p.lang) lines.push(`Language:        ${p.lang}`);
  if (p.keymap) lines.push(`Keymap:          ${p.keymap}`);
  if (p.kargs.length) lines.push(`Kernel args:     ${p.kargs.join(' ')}`);
  for (const n of p.networks) lines.push(`Network:         ${n}`);
  if (p.services.enabled.length) lines.push(`Enable:          ${p.services.enabled.join(', ')}`);
  if (p.services.disabled.length) lines.push(`Disable:         ${p.services.disabled.join(', ')}`);
  for (const s of p.scripts) lines.push(`%${s.kind} (line ${s.line}): ${s.interpreter}${s.nochroot ? ', --nochroot' : ''}${s.errorOnFail ? ', --erroronfail' : ''}`);
  lines.push(`Then:            ${p.finish === 'none' ? 'stay up' : p.finish}`);
  return `${lines.join('\n')}\n`;
}

function warnLine(source: string, w: KsWarning): void {
  warn(`${source}${w.line ? `:${w.line}` : ''}: ${w.message}`);
}

export function kickstartCommand(): Command {
  const cmd = new Command('kickstart')
    .description('install from a kickstart file (basalt\'s subset: docs/kickstart.md): choose the disk, install the image, apply users and settings, run %pre/%post')
    .argument('<ks-file>', 'the kickstart file')
    .option('--check', 'only parse and validate the kickstart and print the plan (writes nothing)')
    .option('--embedded-image <image>', 'install this image (e.g. oci:/run/install/repo/image:TAG) instead of pulling ostreecontainer --url, which stays the update source')
    .option('--boot-medium <device>', 'the device the installer booted from: never written, never chosen')
    .option('--registries-conf <file>', 'registries.conf to use (insecure registries, mirrors)')
    .option('--no-reboot', 'do not run the kickstart\'s reboot/poweroff/halt at the end')
    .addOption(new Option('--format <format>', 'output format').choices(['human', 'json']).default('human'));
  addRegistryOptions(cmd, '');
  addPolicyOptions(cmd);
  cmd.action(async (file: string, o: Opts) => {
    const text = await readFile(file, 'utf8').catch((e: unknown) => {
      throw ioError(`kickstart ${file}`, e);
    });
    const ks = parseKickstart(text, file);
    const json = o.format === 'json';
    const embedded = typeof o.embeddedImage === 'string' ? o.embeddedImage : undefined;
    if (o.check) {
      const plan = planKickstart(ks, embedded ? { embeddedImage: embedded } : {});
      if (json) return printJson(plan);
      for (const w of ks.warnings) warnLine(file, w);
      process.stdout.write(formatPlan(plan));
      return;
    }
    for (const w of ks.warnings) warnLine(file, w);
    // A policy that does not load fails before anything is written.
    const checkSource = ks.ostreecontainer.verifySignatures ? await sourceCheckFrom(o) : undefined;
    const result = await runKickstart(ks, {
      ...(embedded ? { embeddedImage: embedded } : {}),
      ...(typeof o.bootMedium === 'string' ? { bootMedium: o.bootMedium } : {}),
      ...(checkSource ? { checkSource } : {}),
      transport: transportOptions(o, ''),
      ...(json ? {} : { onStep: (s: string) => process.stderr.write(`${s}\n`) }),
      onWarning: (w) => warnLine(file, w),
    });
    if (json) printJson({ ...result, install: { ...result.install, espFiles: undefined } });
    else {
      process.stdout.write(`Installed ${result.plan.source} (${result.install.import.manifestDigest}) onto ${result.disk.target.name}\n`);
      process.stdout.write(`Deployment ${result.install.deployment.stateroot} ${result.install.deployment.checksum}.${result.install.deployment.deploySerial}, updates from ${result.plan.updateSource}\n`);
      for (const e of result.disk.excluded) process.stdout.write(`Left out ${e.name}: ${e.why}\n`);
    }
    const finish = ks.finish;
    if (finish && o.reboot !== false) await finishInstall(finish);
  });
  return cmd;
}
