import { Command, Option } from 'commander';
import { BasaltError } from '../oci/errors.js';
import { openSource } from '../oci/transports/index.js';
import { readImage } from '../oci/image.js';
import type { Compression } from '../oci/media-types.js';
import { buildBaseImage } from '../build/base.js';
import { DEFAULT_BASE_NAME, DEFAULT_SUITE } from '../build/base-packages.js';
import { buildContainerfile } from '../build/containerfile.js';
import type { BuildEvent } from '../build/events.js';
import { lintFailed, lintTree, listLints, type LintReport } from '../build/lint.js';
import { treeFromDirectory, treeFromImage } from '../build/root-tree.js';
import { addRegistryOptions, collect, keyValue, sourceDateEpoch, transportOptions } from './common.js';
import { printJson } from './output.js';

type Opts = Record<string, unknown>;

/** Phase lines on stderr; tool output only with --verbose. */
function phasePrinter(verbose: boolean): (e: BuildEvent) => void {
  return (e) => {
    if (e.type === 'phase-start') process.stderr.write(`basalt: ${e.phase}...\n`);
    else if (e.type === 'phase-done') process.stderr.write(`basalt: ${e.phase} done in ${e.seconds.toFixed(1)} s${e.detail ? ` (${e.detail})` : ''}\n`);
    else if (e.type === 'cache') process.stderr.write(`basalt: ${e.hit ? 'using cached' : 'no cached'} packages ${e.path}\n`);
    else if (verbose) process.stderr.write(`  ${e.line}\n`);
  };
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new BasaltError('usage', `"${value}" is not a positive whole number`);
  return n;
}

export function baseCommand(): Command {
  const base = new Command('base').description('bootable base images built from distribution packages');
  const build = new Command('build')
    .description('build a bootable Debian image (kernel, initramfs with ostree, systemd, basalt) with mmdebstrap into the local store')
    .option('--suite <suite>', 'Debian suite', DEFAULT_SUITE)
    .option('-p, --package <name>', 'extra Debian package; repeatable', collect)
    .option('-t, --tag <name>', `name in the local store (default ${DEFAULT_BASE_NAME})`)
    .option('--rechunk <n>', 'split the tree into N content-stable layers by package', positiveInt)
    .addOption(new Option('--compress <compression>', 'layer compression').choices(['gzip', 'zstd', 'none']).default('gzip'))
    .option('--output-dir <dir>', 'cache directory for the package stage (default /var/cache/basalt/base)')
    .option('--work-dir <dir>', 'where the tree is assembled (default $TMPDIR)')
    .option('--mirror <line>', 'apt sources line (deb URL SUITE COMPONENTS) instead of Debian\'s mirror; repeatable', collect)
    .option('--verbose', 'show mmdebstrap\'s output');
  build.addHelpText('after', '\nByte-identical output for the same packages and SOURCE_DATE_EPOCH (set it in the environment).');
  build.action(async (o: Opts) => {
    const epoch = sourceDateEpoch();
    const result = await buildBaseImage({
      suite: o.suite as string,
      ...(o.package ? { packages: o.package as string[] } : {}),
      ...(o.tag ? { name: o.tag as string } : {}),
      ...(o.rechunk ? { rechunk: o.rechunk as number } : {}),
      compression: o.compress as Compression,
      ...(o.outputDir ? { cacheDir: o.outputDir as string } : {}),
      ...(o.workDir ? { workDir: o.workDir as string } : {}),
      ...(o.mirror ? { sources: o.mirror as string[] } : {}),
      ...(epoch !== undefined ? { sourceDateEpoch: epoch } : {}),
      onEvent: phasePrinter(Boolean(o.verbose)),
    });
    process.stderr.write(`basalt: ${result.name}: kernel ${result.kernel}, ${result.layers} layer(s), ${(result.size / 1048576).toFixed(1)} MiB\n`);
    process.stdout.write(`${result.digest}\n`);
  });
  base.addCommand(build);
  return base;
}

export function buildCommand(): Command {
  const build = new Command('build')
    .description('build a Containerfile with podman (buildah if podman is missing), lint it as a bootable image, store it locally')
    .argument('[context]', 'build context directory', '.')
    .option('-f, --file <containerfile>', 'Containerfile (default CONTEXT/Containerfile or Dockerfile)')
    .requiredOption('-t, --tag <name>', 'image name (podman storage and the local store)')
    .option('--build-arg <key=value>', 'build argument; repeatable', collect)
    .option('--push [destination]', 'also push, to docker://NAME or the given destination')
    .option('--no-lint', 'store without linting')
    .option('--skip <lint>', 'skip a lint; repeatable', collect)
    .option('--fatal-warnings', 'lint warnings fail the build too')
    .option('--verbose', 'show podman\'s output');
  addRegistryOptions(build, 'dest-');
  build.action(async (context: string, o: Opts) => {
    const buildArgs = Object.fromEntries(((o.buildArg as string[] | undefined) ?? []).map((s) => keyValue(s, 'build argument'))) as Record<string, string>;
    const result = await buildContainerfile({
      context,
      ...(o.file ? { file: o.file as string } : {}),
      tag: o.tag as string,
      buildArgs,
      ...(o.push !== undefined ? { push: o.push as string | boolean } : {}),
      lint: o.lint !== false,
      ...(o.skip ? { skipLints: o.skip as string[] } : {}),
      fatalWarnings: Boolean(o.fatalWarnings),
      pushOptions: transportOptions(o, 'dest'),
      onEvent: phasePrinter(Boolean(o.verbose)),
    });
    if (result.lint) for (const f of result.lint.findings) process.stderr.write(`basalt: lint ${f.level}: ${f.lint}: ${f.message}\n`);
    if (result.pushed) process.stderr.write(`basalt: pushed ${result.pushed.destination}\n`);
    process.stdout.write(`${result.digest}\n`);
  });
  return build;
}

function printReport(report: LintReport): void {
  for (const f of report.findings) process.stdout.write(`${f.level === 'fatal' ? 'Failed lint' : 'Lint warning'}: ${f.lint}: ${f.message}\n`);
  process.stdout.write(`Checks passed: ${report.passed.length}\n`);
  if (report.skipped.length) process.stdout.write(`Checks skipped: ${report.skipped.length}\n`);
  if (report.warnings) process.stdout.write(`Warnings: ${report.warnings}\n`);
}

export function containerCommand(): Command {
  const container = new Command('container').description('work with bootable container images');
  const lint = new Command('lint')
    .description('check that an image (or a root directory) is a bootable container image, as bootc container lint does')
    .argument('[image]', 'image name (any transport; bare names are in the local store)')
    .option('--rootfs <dir>', 'lint a root filesystem directory instead of an image')
    .option('--fatal-warnings', 'fail on warnings too')
    .option('--skip <lint>', 'skip a lint; repeatable', collect)
    .option('--list', 'list the lints and exit')
    .addOption(new Option('--format <format>', 'output format').choices(['human', 'json']).default('human'));
  addRegistryOptions(lint, '');
  lint.action(async (image: string | undefined, o: Opts) => {
    if (o.list) {
      const lints = listLints();
      if (o.format === 'json') printJson(lints);
      else for (const l of lints) process.stdout.write(`${l.name} (${l.level}): ${l.description}\n`);
      return;
    }
    if ((image === undefined) === (o.rootfs === undefined)) throw new BasaltError('usage', 'name an image or give --rootfs DIR (one of them)');
    let tree;
    if (o.rootfs) tree = await treeFromDirectory(o.rootfs as string);
    else {
      const source = await openSource(image as string, transportOptions(o, ''));
      try {
        tree = await treeFromImage(await readImage(source), image as string);
      } finally {
        await source.close();
      }
    }
    const report = lintTree(tree, { ...(o.skip ? { skip: o.skip as string[] } : {}) });
    if (o.format === 'json') printJson(report);
    else printReport(report);
    if (lintFailed(report, Boolean(o.fatalWarnings))) {
      const counted = report.fatal + (o.fatalWarnings ? report.warnings : 0);
      throw new BasaltError('invalid', `${report.source}: ${counted} lint check${counted === 1 ? '' : 's'} failed`, { hint: 'see the findings above' });
    }
  });
  container.addCommand(lint);
  return container;
}
