import { Command, Option } from 'commander';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BasaltError, ioError } from '../oci/errors.js';
import { writeFileAtomic } from '../oci/fsutil.js';
import { IsoImage, entrySize, type IsoEntry } from '../media/iso/reader.js';
import { remasterIso } from '../media/iso/remaster.js';
import { parseKickstart } from '../deploy/kickstart/index.js';
import { buildInstallerIso } from '../media/iso/installer/build.js';
import { addRegistryOptions, collect, sourceDateEpoch, transportOptions } from './common.js';
import { printFormatted, warn } from './output.js';

type Opts = Record<string, unknown>;

function formatOption(): Option {
  return new Option('--format <format>', 'output format').choices(['human', 'json']).default('human');
}

async function withIso<T>(path: string, fn: (iso: IsoImage) => Promise<T>): Promise<T> {
  const iso = await IsoImage.open(path);
  try {
    return await fn(iso);
  } finally {
    await iso.close();
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(2, '0')}`;
}

function infoCommand(): Command {
  return new Command('info')
    .description('show an ISO\'s volume, boot catalog (El Torito) and hybrid partition tables')
    .argument('<iso>', 'the ISO image')
    .addOption(formatOption())
    .action(async (path: string, o: Opts) =>
      withIso(path, async (iso) => {
        const info = {
          ...iso.info(),
          fileSize: iso.fileSize,
          bootCatalog: iso.catalog ? { lba: iso.catalog.lba, entries: iso.catalog.entries.map(({ catalogOffset: _, ...e }) => e) } : null,
          mbr: iso.hybrid.mbr,
          gpt: iso.hybrid.gpt ?? null,
        };
        await printFormatted(info, o.format as string, () => {
          const lines = [
            `Volume id:      ${info.volumeId}`,
            `System id:      ${info.systemId}`,
            `Volume size:    ${info.volumeSpaceSize} sectors (${info.volumeSpaceSize * 2048} bytes; file ${info.fileSize} bytes)`,
            `Created:        ${info.creationDate ?? '-'}`,
            `Modified:       ${info.modificationDate ?? '-'}`,
            `Rock Ridge:     ${info.rockRidge ? 'yes' : 'no'}`,
            `Joliet:         ${info.joliet ? 'yes' : 'no'}`,
            `isomd5sum:      ${info.md5Implanted ? 'implanted' : 'none'}`,
          ];
          if (info.bootCatalog) {
            lines.push(`Boot catalog:   sector ${info.bootCatalog.lba}`);
            for (const e of info.bootCatalog.entries) lines.push(`  ${e.platform.padEnd(5)} ${e.bootable ? 'bootable' : 'not bootable'}  media ${e.mediaType}  sector ${e.lba}  load ${e.sectorCount} × 512 B`);
          } else lines.push('Boot catalog:   none');
          for (const p of info.mbr) lines.push(`MBR ${p.index}:          type ${hex(p.type)}${p.bootable ? ' (active)' : ''}  start ${p.startLba}  ${p.sizeBlocks} × 512 B`);
          for (const p of info.gpt?.partitions ?? []) lines.push(`GPT ${p.index}:          ${p.name || '-'}  ${p.typeGuid}  ${p.firstLba}-${p.lastLba}`);
          return `${lines.join('\n')}\n`;
        });
      }),
    );
}

function describe(path: string, e: IsoEntry): { path: string; type: string; size: number; sector: number; mode?: string; target?: string } {
  return {
    path,
    type: e.isDirectory ? 'directory' : e.symlink !== undefined ? 'symlink' : 'file',
    size: e.isDirectory ? 0 : entrySize(e),
    sector: e.record.extent,
    ...(e.mode !== undefined ? { mode: (e.mode & 0o7777).toString(8).padStart(4, '0') } : {}),
    ...(e.symlink !== undefined ? { target: e.symlink } : {}),
  };
}

function lsCommand(): Command {
  return new Command('ls')
    .description('list files in an ISO (Rock Ridge names; --joliet for the Joliet tree)')
    .argument('<iso>', 'the ISO image')
    .argument('[path]', 'directory or file inside the ISO', '/')
    .option('-R, --recursive', 'list everything below the path')
    .option('--joliet', 'read the Joliet tree instead of the primary (Rock Ridge) tree')
    .addOption(formatOption())
    .action(async (path: string, dir: string, o: Opts) =>
      withIso(path, async (iso) => {
        const tree = o.joliet ? 'joliet' : 'primary';
        const start = await iso.lookup(dir, tree);
        if (!start) throw new BasaltError('not-found', `${dir} does not exist in ${path}`);
        const rows: ReturnType<typeof describe>[] = [];
        const prefix = dir === '/' ? '' : `/${dir.split('/').filter(Boolean).join('/')}`;
        if (!start.isDirectory) rows.push(describe(prefix, start));
        else if (o.recursive) await iso.walk(tree, (p, e) => void rows.push(describe(p, e)), start, prefix);
        else for (const e of await iso.list(start.record, tree)) rows.push(describe(`${prefix}/${e.name}`, e));
        await printFormatted(rows, o.format as string, () =>
          rows.map((r) => `${r.type === 'directory' ? 'd' : r.type === 'symlink' ? 'l' : '-'} ${String(r.size).padStart(12)}  ${r.path}${r.target ? ` -> ${r.target}` : ''}\n`).join(''),
        );
      }),
    );
}

function extractCommand(): Command {
  return new Command('extract')
    .description('copy a file or directory out of an ISO')
    .argument('<iso>', 'the ISO image')
    .argument('<path>', 'file or directory inside the ISO')
    .argument('<dest>', 'where to write it (a directory for a directory; a file path or "-" for stdout for a file)')
    .option('--joliet', 'read the Joliet tree')
    .action(async (path: string, inner: string, dest: string, o: Opts) =>
      withIso(path, async (iso) => {
        const tree = o.joliet ? 'joliet' : 'primary';
        const start = await iso.lookup(inner, tree);
        if (!start) throw new BasaltError('not-found', `${inner} does not exist in ${path}`);
        if (!start.isDirectory) {
          const data = await iso.readFile(start);
          if (dest === '-') process.stdout.write(data);
          else await writeFileAtomic(dest, data);
          return;
        }
        if (dest === '-') throw new BasaltError('usage', `${inner} is a directory; give a destination directory`);
        await mkdir(dest, { recursive: true }).catch((e: unknown) => {
          throw ioError(`creating ${dest}`, e);
        });
        await iso.walk(
          tree,
          async (p, e) => {
            const target = join(dest, p);
            if (!target.startsWith(`${dest.replace(/\/$/, '')}/`)) throw new BasaltError('unsafe', `${p} in ${path} would land outside ${dest}`);
            if (e.isDirectory) await mkdir(target, { recursive: true });
            else if (e.symlink === undefined) {
              await mkdir(dirname(target), { recursive: true });
              await writeFileAtomic(target, await iso.readFile(e));
            }
          },
          start,
          '',
        );
      }),
    );
}

function splitArgs(values: string[]): string[] {
  return values.flatMap((v) => v.split(/\s+/).filter(Boolean));
}

function remasterCommand(): Command {
  const cmd = new Command('remaster')
    .description('add a kickstart, files and kernel arguments to an installer ISO in one streaming pass (mkksiso\'s options; no root, nothing extracted)')
    .argument('<in>', 'the input ISO')
    .argument('<out>', 'the output ISO (written whole or not at all)')
    .option('--ks <file>', 'kickstart to add at the ISO\'s root; every boot entry gets inst.ks=hd:LABEL=<volid>:/<name>')
    .option('-a, --add <path>', 'file or directory to add at the ISO\'s root (repeatable)', collect, [])
    .option('-c, --cmdline <args>', 'kernel arguments to add to every boot entry (repeatable)', collect, [])
    .option('-r, --rm-args <keys>', 'kernel argument keys to remove from every boot entry (repeatable, space-separated)', collect, [])
    .option('-V, --volid <id>', 'new volume id, rewritten in every boot configuration')
    .option('-R, --replace <from_to...>', 'replace text FROM with TO in every boot configuration: -R FROM TO (repeatable)')
    .option('-u, --updates <img>', 'anaconda updates image, added as /updates.img with inst.updates=')
    .option('--no-md5sum', 'do not implant the isomd5sum checksum')
    .addOption(formatOption());
  cmd.action(async (input: string, output: string, o: Opts) => {
    const replaceWords = (o.replace as string[] | undefined) ?? [];
    if (replaceWords.length % 2 !== 0) throw new BasaltError('usage', '-R/--replace takes pairs: -R FROM TO');
    const replace: [string, string][] = [];
    for (let i = 0; i < replaceWords.length; i += 2) replace.push([replaceWords[i] as string, replaceWords[i + 1] as string]);
    const epoch = process.env.SOURCE_DATE_EPOCH;
    const report = await remasterIso({
      input,
      output,
      ...(typeof o.ks === 'string' ? { kickstart: o.ks } : {}),
      add: o.add as string[],
      cmdline: splitArgs(o.cmdline as string[]),
      removeArgs: splitArgs(o.rmArgs as string[]),
      ...(typeof o.volid === 'string' ? { volumeId: o.volid } : {}),
      replace,
      ...(typeof o.updates === 'string' ? { updates: o.updates } : {}),
      md5: o.md5sum !== false,
      ...(epoch && /^\d+$/.test(epoch) ? { sourceDateEpoch: Number(epoch) } : {}),
    });
    await printFormatted(report, o.format as string, () => {
      const lines = [`Wrote ${report.output} (${report.bytes} bytes, volume id "${report.volumeId}")`];
      for (const c of report.configs) lines.push(`  edited ${c.path}: ${c.kernelLines} kernel command line(s)`);
      lines.push(`  EFI boot image: ${report.efiImage}`);
      for (const a of report.added) lines.push(`  added ${a}`);
      lines.push(report.md5 ? `  isomd5sum implanted (md5 ${report.md5})` : '  no isomd5sum implanted');
      return `${lines.join('\n')}\n`;
    });
  });
  return cmd;
}

/** `basalt iso IMAGE --kickstart ks.cfg -o install.iso`: the default action when no subcommand is named. */
async function buildAction(image: string | undefined, o: Opts, cmd: Command): Promise<void> {
  if (!image) {
    cmd.help();
    return;
  }
  if (typeof o.kickstart !== 'string') throw new BasaltError('usage', 'building an installer ISO needs --kickstart FILE', { hint: 'basalt iso IMAGE --kickstart ks.cfg -o install.iso' });
  if (typeof o.output !== 'string') throw new BasaltError('usage', 'building an installer ISO needs -o FILE (the ISO to write)');
  const epoch = sourceDateEpoch();
  const progress = process.stderr.isTTY || o.verbose === true;
  const report = await buildInstallerIso({
    image,
    kickstart: o.kickstart,
    validateKickstart: parseKickstart,
    output: o.output,
    embed: o.embed === true,
    ...(typeof o.registriesConf === 'string' ? { registriesConf: o.registriesConf } : {}),
    ...(typeof o.label === 'string' ? { volumeId: o.label } : {}),
    transport: transportOptions(o, ''),
    ...(epoch !== undefined ? { sourceDateEpoch: epoch } : {}),
    ...(progress ? { onStep: (step: string, detail: string) => void process.stderr.write(`iso: ${step}: ${detail}\n`) } : {}),
  });
  for (const w of report.kickstartWarnings) warn(w);
  await printFormatted(report, o.json === true ? 'json' : 'human', () => {
    const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
    return [
      `Wrote ${report.output} (${mib(report.bytes)}, volume id "${report.volumeId}")`,
      `  kernel ${report.kernelVersion}, installer initramfs ${mib(report.initrdBytes)}, root squashfs ${mib(report.rootfsBytes)}`,
      `  image ${report.embedded ? 'embedded as an OCI layout (installs offline)' : 'pulled by the installer from the kickstart\'s ostreecontainer --url'}`,
      `  times: ${Object.entries(report.seconds).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}`,
      '',
    ].join('\n');
  });
}

export function isoCommand(): Command {
  const iso = new Command('iso')
    .description('build installer ISOs from bootable images; read ISO 9660 images (Joliet, Rock Ridge, El Torito, hybrid MBR/GPT) and remaster installer ISOs')
    .argument('[image]', 'bootable image to build an installer ISO from (any transport)')
    .option('--kickstart <file>', 'kickstart run by the installer (checked now; stored on the ISO as /ks.cfg)')
    .option('-o, --output <file>', 'the ISO to write')
    .option('--embed', 'store the image on the ISO as an OCI layout: the installer needs no registry')
    .option('--registries-conf <file>', "the installer's /etc/containers/registries.conf")
    .option('--label <id>', 'volume id of the ISO, the label the installer finds its medium by (default BASALT-INSTALLER)')
    .option('--verbose', 'print each step on stderr even without a terminal')
    .option('--json', 'print the report as JSON');
  addRegistryOptions(iso, '');
  // Options after a subcommand's name belong to it (`iso info X --format json`), not to the build.
  return iso
    .enablePositionalOptions()
    .action(buildAction)
    .addCommand(infoCommand())
    .addCommand(lsCommand())
    .addCommand(extractCommand())
    .addCommand(remasterCommand());
}
