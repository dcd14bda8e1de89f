import { access, mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { digestOf } from '../oci/digest.js';
import { tempPathFor } from '../oci/fsutil.js';
import { ioError } from '../oci/errors.js';
import type { BuildEventSink } from './events.js';
import { runTool } from './run-tool.js';

/**
 * The package stage of a base build: mmdebstrap installs Debian packages into a tarball,
 * cached by everything that decides its contents, so reruns and tests skip the ~2 minute
 * download and install. The tarball is written beside its final name and renamed, so a
 * failed or interrupted run never leaves a cache entry.
 */
export interface BootstrapOptions {
  suite: string;
  /** apt sources lines (`deb URL SUITE COMPONENTS`); default: Debian's mirror with updates and security. */
  sources?: string[];
  packages: readonly string[];
  architecture: string;
  sourceDateEpoch?: number;
  cacheDir: string;
  onEvent?: BuildEventSink;
  signal?: AbortSignal;
}

export interface Bootstrap {
  tarball: string;
  cached: boolean;
}

export function defaultSources(suite: string): string[] {
  // Security updates live in their own archive; an OS image without them is not shippable.
  return [
    `deb http://deb.debian.org/debian ${suite} main`,
    `deb http://deb.debian.org/debian ${suite}-updates main`,
    `deb http://deb.debian.org/debian-security ${suite}-security main`,
  ];
}

/**
 * Hooks that keep package scripts away from boot loaders during the build. The image is
 * built in a directory with no ESP: systemd-boot's postinst must not run bootctl against
 * the host, and the kernel's postinst.d hooks (dracut, systemd-boot's kernel-install) must
 * not write /boot — the initramfs is made later, once, into /usr/lib/modules. Each file is
 * diverted by dpkg before the packages are installed and the diversion removed after, so
 * dpkg's database ends as if nothing happened.
 */
const DIVERTED = ['/usr/bin/bootctl', '/etc/kernel/postinst.d/dracut', '/etc/kernel/postinst.d/zz-systemd-boot'];
const DIVERSION_SUFFIX = '.basalt-build';

function divertHooks(): string[] {
  // Each diverted program is replaced by a stub answering "done", because package scripts
  // call some of them directly (dracut's postinst runs its kernel hook) under `set -e`.
  return DIVERTED.map(
    (f) => `chroot "$1" dpkg-divert --quiet --local --rename --divert ${f}${DIVERSION_SUFFIX} --add ${f} && mkdir -p "$1${dirname(f)}" && printf '#!/bin/sh\\nexit 0\\n' > "$1${f}" && chmod 755 "$1${f}"`,
  );
}

function undivertHooks(): string[] {
  return DIVERTED.map((f) => `rm -f "$1${f}" && chroot "$1" dpkg-divert --quiet --local --rename --divert ${f}${DIVERSION_SUFFIX} --remove ${f}`);
}

/** Bumped whenever the hooks or flags change what mmdebstrap produces. */
const RECIPE_VERSION = 1;

function mmdebstrapArgs(options: BootstrapOptions, sources: string[], out: string): string[] {
  const args = ['--mode=root', '--variant=minbase', '--format=tar', `--architectures=${options.architecture}`, `--include=${[...options.packages].sort().join(',')}`];
  for (const h of divertHooks()) args.push(`--essential-hook=${h}`);
  for (const h of undivertHooks()) args.push(`--customize-hook=${h}`);
  args.push(options.suite, out, ...sources);
  return args;
}

export function bootstrapKey(options: BootstrapOptions): string {
  const sources = options.sources ?? defaultSources(options.suite);
  const recipe = { v: RECIPE_VERSION, suite: options.suite, arch: options.architecture, sources, packages: [...new Set(options.packages)].sort(), epoch: options.sourceDateEpoch ?? null, args: mmdebstrapArgs(options, sources, 'OUT') };
  return digestOf(JSON.stringify(recipe)).slice('sha256:'.length, 'sha256:'.length + 20);
}

export async function bootstrap(options: BootstrapOptions): Promise<Bootstrap> {
  const sources = options.sources ?? defaultSources(options.suite);
  const tarball = join(options.cacheDir, `bootstrap-${options.suite}-${bootstrapKey(options)}.tar`);
  if (await access(tarball).then(() => true, () => false)) {
    options.onEvent?.({ type: 'cache', hit: true, path: tarball });
    return { tarball, cached: true };
  }
  options.onEvent?.({ type: 'cache', hit: false, path: tarball });
  await mkdir(options.cacheDir, { recursive: true }).catch((e: unknown) => {
    throw ioError(`creating cache directory ${options.cacheDir}`, e);
  });
  // mmdebstrap picks the output format from the name, so the temp name must end in .tar.
  const temp = `${tempPathFor(tarball)}.tar`;
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C.UTF-8' };
  if (options.sourceDateEpoch !== undefined) env.SOURCE_DATE_EPOCH = String(options.sourceDateEpoch);
  else delete env.SOURCE_DATE_EPOCH;
  try {
    await runTool('mmdebstrap', mmdebstrapArgs(options, sources, temp), {
      what: `mmdebstrap of Debian ${options.suite}`,
      env,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onEvent ? { onStderrLine: (line: string) => options.onEvent?.({ type: 'log', line }) } : {}),
    });
    await rename(temp, tarball);
  } catch (e) {
    await rm(temp, { force: true });
    throw e;
  }
  return { tarball, cached: false };
}
