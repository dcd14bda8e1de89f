import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { basename, join, resolve as resolvePath } from 'node:path';
import { BasaltError, ioError } from '../oci/errors.js';
import { runOstree } from './ostree-tool.js';
import { blsValue, kargValue, parseBls } from './bls.js';

/** The ostree repository of a sysroot. */
export function repoOf(sysroot: string): string {
  return join(sysroot, 'ostree', 'repo');
}

export function deployDir(sysroot: string, stateroot: string, checksum: string, serial: number): string {
  return join(sysroot, 'ostree', 'deploy', stateroot, 'deploy', `${checksum}.${serial}`);
}

export function stateVarDir(sysroot: string, stateroot: string): string {
  return join(sysroot, 'ostree', 'deploy', stateroot, 'var');
}

/** The kernel argument naming a deployment, so an initramfs hook can recreate its boot link. */
export const DEPLOYMENT_KARG = 'basalt.deployment';

export function deploymentKargValue(stateroot: string, checksum: string, serial: number): string {
  return `${stateroot}/${checksum}.${serial}`;
}

const exists = (p: string): Promise<boolean> =>
  stat(p).then(
    () => true,
    () => false,
  );

/** `ostree admin init-fs` and `os-init STATEROOT`, each only if not done yet. */
export async function initSysroot(sysroot: string, stateroot: string): Promise<void> {
  let st;
  try {
    st = await stat(sysroot);
  } catch (e) {
    throw ioError(`install root ${sysroot}`, e);
  }
  if (!st.isDirectory()) throw new BasaltError('usage', `install root ${sysroot} is not a directory`);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(stateroot)) throw new BasaltError('usage', `stateroot "${stateroot}" is not a valid name`, { hint: 'use letters, digits, dot, dash and underscore' });
  if (!(await exists(join(repoOf(sysroot), 'config')))) await runOstree(['admin', 'init-fs', sysroot], { what: `initialising the sysroot ${sysroot}` });
  if (!(await exists(join(sysroot, 'ostree', 'deploy', stateroot)))) await runOstree(['admin', 'os-init', `--sysroot=${sysroot}`, stateroot], { what: `creating stateroot ${stateroot} in ${sysroot}` });
}

/** A deployment as ostree's BLS entry under /boot/loader/entries describes it. */
export interface Deployment {
  stateroot: string;
  checksum: string;
  deploySerial: number;
  /** ostree's `version` field: higher is earlier in ostree's list (the default is highest). */
  blsVersion: string;
  title: string;
  /** Paths relative to the sysroot's /boot, as in the entry. */
  linux: string;
  initrd: string[];
  options: string;
  /** The ostree entry file (its name rotates on every deploy; never a stable id). */
  entryFile: string;
  bootChecksum: string;
}

/**
 * The deployments of a sysroot, in ostree's order (default first), read from ostree's BLS
 * entries: each names its boot link `ostree=/ostree/boot.N/STATEROOT/BOOTCSUM/BOOTSERIAL`,
 * which resolves to the deployment directory.
 */
export async function listDeployments(sysroot: string): Promise<Deployment[]> {
  const entriesDir = join(sysroot, 'boot', 'loader', 'entries');
  let names: string[];
  try {
    names = (await readdir(entriesDir)).filter((n) => n.endsWith('.conf'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw ioError(`reading ${entriesDir}`, e);
  }
  const out: Deployment[] = [];
  for (const name of names) {
    const file = join(entriesDir, name);
    const entry = parseBls(await readFile(file, 'utf8'));
    const options = blsValue(entry, 'options') ?? '';
    const bootLink = kargValue(options, 'ostree');
    if (bootLink === undefined) continue;
    const m = /^\/ostree\/boot\.[01]\/([^/]+)\/([0-9a-f]{64})\/(\d+)$/.exec(bootLink);
    if (!m) throw new BasaltError('invalid', `${file}: ostree= argument "${bootLink}" is not /ostree/boot.N/STATEROOT/CHECKSUM/SERIAL`);
    const target = await readlink(join(sysroot, bootLink)).catch((e: unknown) => {
      throw ioError(`boot link ${bootLink} of ${file}`, e);
    });
    const dep = /^([0-9a-f]{64})\.(\d+)$/.exec(basename(resolvePath('/', target)));
    if (!dep) throw new BasaltError('invalid', `boot link ${bootLink} points to "${target}", not a deployment`);
    out.push({
      stateroot: m[1] as string,
      checksum: dep[1] as string,
      deploySerial: Number(dep[2]),
      blsVersion: blsValue(entry, 'version') ?? '0',
      title: blsValue(entry, 'title') ?? '',
      linux: blsValue(entry, 'linux') ?? '',
      initrd: entry.get('initrd') ?? [],
      options,
      entryFile: file,
      bootChecksum: m[2] as string,
    });
  }
  // ostree numbers entries so that the default has the highest version.
  return out.sort((a, b) => Number(b.blsVersion) - Number(a.blsVersion));
}

/** The serial ostree will give the next deployment of `checksum` (one more than the highest). */
export async function nextDeploySerial(sysroot: string, stateroot: string, checksum: string): Promise<number> {
  const dir = join(sysroot, 'ostree', 'deploy', stateroot, 'deploy');
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let next = 0;
  for (const n of names) {
    const m = /^([0-9a-f]{64})\.(\d+)$/.exec(n);
    if (m && m[1] === checksum) next = Math.max(next, Number(m[2]) + 1);
  }
  return next;
}

export interface OstreeDeployOptions {
  stateroot: string;
  /** Kernel arguments in order; each is appended (repeats such as console= are kept). */
  kargs: readonly string[];
  originFile: string;
}

/** `ostree admin deploy` of a commit; returns the new deployment as ostree's entries show it. */
export async function ostreeDeploy(sysroot: string, refOrCommit: string, checksum: string, options: OstreeDeployOptions): Promise<Deployment> {
  const args = ['admin', 'deploy', `--sysroot=${sysroot}`, `--os=${options.stateroot}`, `--origin-file=${options.originFile}`];
  for (const k of options.kargs) args.push(`--karg-append=${k}`);
  args.push(refOrCommit);
  const serial = await nextDeploySerial(sysroot, options.stateroot, checksum);
  await runOstree(args, { what: `deploying ${refOrCommit} to ${sysroot}` });
  const deployed = (await listDeployments(sysroot)).find((d) => d.stateroot === options.stateroot && d.checksum === checksum && d.deploySerial === serial);
  if (!deployed) throw new BasaltError('tool', `ostree deployed ${refOrCommit} but no boot entry for deployment ${checksum}.${serial} was found in ${sysroot}/boot/loader/entries`);
  return deployed;
}
