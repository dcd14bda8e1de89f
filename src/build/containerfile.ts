import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BasaltError, isBasaltError } from '../oci/errors.js';
import { copyImage } from '../oci/copy.js';
import { readImage } from '../oci/image.js';
import { hasProgram } from '../oci/layer/system-tools.js';
import { normalisePodmanName } from '../oci/transports/containers-storage.js';
import { openDestination, openSource } from '../oci/transports/index.js';
import type { TransportOptions } from '../oci/transport.js';
import { baseImagesOf } from './containerfile-from.js';
import { phase, type BuildEventSink } from './events.js';
import { lintError, lintFailed, lintTree, type LintReport } from './lint.js';
import { treeFromImage } from './root-tree.js';
import { runTool } from './run-tool.js';

/**
 * `basalt build`: podman (or buildah) builds the Containerfile — basalt has no container
 * runtime of its own — then the result is linted as a bootable image and copied from
 * podman's storage into basalt's local store, and pushed on request.
 */
export interface ContainerBuildOptions {
  /** Build context directory (default "."). */
  context?: string;
  /** Containerfile path (default CONTEXT/Containerfile, else CONTEXT/Dockerfile). */
  file?: string;
  /** The name the image gets in podman's storage and in basalt's store. */
  tag: string;
  buildArgs?: Readonly<Record<string, string>>;
  /** Also copy to this destination (`docker://HOST/REPO:TAG`); true pushes to docker://TAG. */
  push?: string | boolean;
  /** Lint the result (default true); fatal findings stop the build before it is stored. */
  lint?: boolean;
  skipLints?: readonly string[];
  fatalWarnings?: boolean;
  /** Options for basalt's store (storeRoot). */
  store?: TransportOptions;
  /** Options for the push destination (credentials, TLS). */
  pushOptions?: TransportOptions;
  onEvent?: BuildEventSink;
  signal?: AbortSignal;
}

export interface ContainerBuildResult {
  name: string;
  digest: string;
  lint?: LintReport;
  pushed?: { destination: string; digest: string };
}

async function findContainerfile(context: string, file: string | undefined): Promise<string> {
  const candidates = file ? [resolve(file)] : [join(context, 'Containerfile'), join(context, 'Dockerfile')];
  for (const c of candidates) if (await stat(c).then((s) => s.isFile(), () => false)) return c;
  throw new BasaltError('not-found', file ? `Containerfile ${file} does not exist` : `no Containerfile or Dockerfile in ${context}`, { hint: 'give one with -f FILE' });
}

/**
 * Hands FROM images in basalt's store to podman: copied when podman lacks them or holds a
 * different image under the name (basalt's store is what `basalt base build` updates, so it
 * wins). Names only podman or a registry knows are left to podman.
 */
async function provideBaseImages(containerfile: string, buildArgs: Readonly<Record<string, string>>, store: TransportOptions): Promise<string[]> {
  const provided: string[] = [];
  for (const image of baseImagesOf(await readFile(containerfile, 'utf8'), buildArgs)) {
    if (image.includes('://') || image.includes('@')) continue;
    const podmanName = normalisePodmanName(image);
    let source;
    try {
      source = await openSource(`store:${image}`, store);
    } catch (e) {
      if (isBasaltError(e, 'not-found')) continue; // podman pulls it, or says why not
      throw e;
    }
    try {
      const wanted = (await readImage(source)).raw?.configDescriptor.digest.replace(/^sha256:/, '');
      const podmanId = await runTool('podman', ['image', 'inspect', '--format', '{{.Id}}', podmanName], { what: 'podman image inspect' }).then((r) => r.stdout.trim(), () => undefined);
      if (podmanId !== undefined && podmanId === wanted) continue;
      await copyImage(source, await openDestination(`containers-storage:${podmanName}`));
      provided.push(podmanName);
    } finally {
      await source.close();
    }
  }
  return provided;
}

export async function buildContainerfile(options: ContainerBuildOptions): Promise<ContainerBuildResult> {
  const context = resolve(options.context ?? '.');
  if (!(await stat(context).then((s) => s.isDirectory(), () => false))) throw new BasaltError('not-found', `build context ${context} is not a directory`);
  const containerfile = await findContainerfile(context, options.file);
  const name = normalisePodmanName(options.tag);
  const buildArgs = options.buildArgs ?? {};
  const store = options.store ?? {};
  const sink = options.onEvent;
  const usePodman = await hasProgram('podman');
  if (usePodman) await provideBaseImages(containerfile, buildArgs, store);
  const argFlags = Object.entries(buildArgs).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]);
  const [program, args] = usePodman
    ? ['podman', ['build', '-f', containerfile, '-t', name, ...argFlags, context]]
    : ['buildah', ['bud', '--isolation=chroot', '-f', containerfile, '-t', name, ...argFlags, context]];
  await phase(sink, 'podman-build', async () => {
    try {
      await runTool(program, args, {
        what: `building ${containerfile}`,
        debianPackage: 'podman',
        ...(sink ? { onStderrLine: (line: string) => sink({ type: 'log', line }) } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (e) {
      if (!isBasaltError(e, 'tool') || e.message.includes('not installed')) throw e;
      // podman prints the failing step on stdout and the reason on stderr; runTool kept the tail.
      throw new BasaltError('tool', `Containerfile ${containerfile} failed to build: ${e.message.replace(/^[^\n]*\n/, '')}`, { hint: `fix the step named above and run basalt build again`, cause: e });
    }
  }, () => program);
  const source = await openSource(`containers-storage:${name}`, {});
  try {
    const result: ContainerBuildResult = { name, digest: '' };
    if (options.lint !== false) {
      const image = await readImage(source);
      const report = await phase(sink, 'lint', async () => lintTree(await treeFromImage(image, name), { ...(options.skipLints ? { skip: options.skipLints } : {}) }));
      result.lint = report;
      if (lintFailed(report, options.fatalWarnings)) throw lintError(report, options.fatalWarnings);
    }
    const stored = await phase(sink, 'store', async () => copyImage(source, await openDestination(`store:${name}`, store)), (r) => r.digest);
    result.digest = stored.digest;
    if (options.push) {
      const destination = typeof options.push === 'string' ? options.push : `docker://${name}`;
      const pushed = await phase(sink, 'push', async () => copyImage(source, await openDestination(destination, options.pushOptions ?? {})), (r) => r.digest);
      result.pushed = { destination, digest: pushed.digest };
    }
    return result;
  } finally {
    await source.close();
  }
}

