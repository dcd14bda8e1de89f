import { access, readFile, stat } from 'node:fs/promises';
import { BasaltError, ioError } from '../oci/errors.js';
import { ESP_MOUNT_POINT } from './install.js';
import { runOstree } from './ostree-tool.js';
import { originImage, parseKeyFile, type ImageSpec } from './origin.js';
import { deployDir, listDeployments, repoOf, type Deployment } from './sysroot.js';
import { directoryEsp, type EspTarget } from './esp-target.js';
import { mirrorBootEntries, type MirrorResult } from './bootentries.js';

/**
 * The system an update command acts on: the running one (sysroot /, /run/ostree-booted), or
 * a sysroot directory given by --sysroot (tests, image builders). The differences matter:
 * only a booted system has a booted deployment, can stage (ostree finalises staged
 * deployments at shutdown of the running system) and can reboot.
 */
export interface Host {
  sysroot: string;
  isBooted: boolean;
  /** ostree's deployments from its boot entries, default first (a staged one is not among them). */
  deployments: Deployment[];
  booted: Deployment | undefined;
  /** `CHECKSUM.SERIAL` of the staged deployment, when there is one. */
  staged: string | undefined;
  /** The deployment updates start from: the booted one, else the default. */
  current: Deployment;
  stateroot: string;
}

export interface HostOptions {
  /** A sysroot directory; default: the running system. */
  sysroot?: string;
}

export const deploymentKey = (d: Deployment): string => `${d.checksum}.${d.deploySerial}`;

/** Refuses a running system not booted from ostree, or a sysroot directory without a repository. */
export async function requireOstreeSystem(sysroot: string, isBooted: boolean): Promise<void> {
  if (isBooted) {
    await access('/run/ostree-booted').catch(() => {
      throw new BasaltError('usage', 'this system was not booted from an ostree deployment (/run/ostree-booted is missing)', { hint: 'give --sysroot DIR for an installed root filesystem' });
    });
  } else {
    await access(repoOf(sysroot)).catch((e: unknown) => {
      throw ioError(`sysroot ${sysroot} (no ostree/repo)`, e);
    });
  }
}

export async function openHost(options: HostOptions = {}): Promise<Host> {
  const isBooted = options.sysroot === undefined;
  const sysroot = options.sysroot ?? '/';
  await requireOstreeSystem(sysroot, isBooted);
  const deployments = await listDeployments(sysroot);
  const booted = isBooted ? await bootedDeployment(sysroot, deployments) : undefined;
  const current = booted ?? deployments[0];
  if (!current) throw new BasaltError('not-found', `${sysroot} has no deployment`, { hint: 'install an image first (basalt install)' });
  const staged = isBooted ? await stagedDeploymentId() : undefined;
  return { sysroot, isBooted, deployments, booted, staged, current, stateroot: current.stateroot };
}

/** The deployment whose directory is the running root (same device and inode as /). */
export async function bootedDeployment(sysroot: string, deployments: Deployment[]): Promise<Deployment | undefined> {
  const root = await stat('/');
  for (const d of deployments) {
    const st = await stat(deployDir(sysroot, d.stateroot, d.checksum, d.deploySerial)).catch(() => undefined);
    if (st && st.dev === root.dev && st.ino === root.ino) return d;
  }
  return undefined;
}

export type DeploymentId = Pick<Deployment, 'stateroot' | 'checksum' | 'deploySerial'>;

/**
 * The staged deployment, from `ostree admin status` (only a running system has one). It has
 * no boot entry until ostree finalises it at shutdown, so it is not among listDeployments'.
 */
export async function stagedDeployment(): Promise<DeploymentId | undefined> {
  const { stdout } = await runOstree(['admin', 'status']);
  const m = /^\s*(\S+) ([0-9a-f]{64})\.(\d+) \(staged\)/m.exec(stdout);
  return m ? { stateroot: m[1] as string, checksum: m[2] as string, deploySerial: Number(m[3]) } : undefined;
}

/** The staged deployment as `CHECKSUM.SERIAL`. */
export async function stagedDeploymentId(): Promise<string | undefined> {
  const d = await stagedDeployment();
  return d && `${d.checksum}.${d.deploySerial}`;
}

export function originPath(sysroot: string, d: DeploymentId): string {
  return `${deployDir(sysroot, d.stateroot, d.checksum, d.deploySerial)}.origin`;
}

export async function readOrigin(sysroot: string, d: Deployment): Promise<string> {
  try {
    return await readFile(originPath(sysroot, d), 'utf8');
  } catch (e) {
    throw ioError(`origin file of deployment ${deploymentKey(d)}`, e);
  }
}

/** The image a deployment updates from, from its origin file. */
export async function imageOf(sysroot: string, d: Deployment): Promise<ImageSpec> {
  const spec = originImage(parseKeyFile(await readOrigin(sysroot, d)));
  if (!spec) throw new BasaltError('invalid', `deployment ${deploymentKey(d)} has no image in its origin file ${originPath(sysroot, d)}`, { hint: 'use basalt switch IMAGE to name one' });
  return spec;
}

/**
 * Where the ESP is: --esp DIR when given; on a running system the mount at /boot/efi (written
 * by install into /etc/fstab) when it holds systemd-boot's loader directory.
 */
export async function espTargetOf(host: Host, espDir?: string): Promise<EspTarget | undefined> {
  if (espDir !== undefined) return directoryEsp(espDir);
  if (!host.isBooted) return undefined;
  const isEsp = await stat(`${ESP_MOUNT_POINT}/loader`).then((s) => s.isDirectory(), () => false);
  return isEsp ? directoryEsp(ESP_MOUNT_POINT) : undefined;
}

/** How many tries systemd-boot gives a new entry on a device; `0` in the file turns counting off. */
export const BOOT_COUNTING_FILE = '/etc/basalt/boot-counting';
export const DEFAULT_DEVICE_BOOT_TRIES = 3;

/**
 * On a running device every new deployment's entry is counted (automatic rollback: an entry
 * that never reaches boot-complete.target runs out of tries and the previous one boots);
 * entries already on the ESP keep their state. A sysroot directory is not counted.
 */
async function deviceBootTries(host: Host): Promise<number | undefined> {
  if (!host.isBooted) return undefined;
  let text: string;
  try {
    text = await readFile(BOOT_COUNTING_FILE, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return DEFAULT_DEVICE_BOOT_TRIES;
    throw ioError(`reading ${BOOT_COUNTING_FILE}`, e);
  }
  const tries = Number(text.trim());
  if (!Number.isInteger(tries) || tries < 0 || tries > 100)
    throw new BasaltError('invalid', `${BOOT_COUNTING_FILE} holds "${text.trim()}", not a number of tries from 0 (off) to 100`);
  return tries === 0 ? undefined : tries;
}

/** Mirrors the sysroot's deployments to the ESP, when there is one to mirror to. */
export async function syncEsp(host: Host, espDir?: string): Promise<MirrorResult | undefined> {
  const target = await espTargetOf(host, espDir);
  if (!target) return undefined;
  const tries = await deviceBootTries(host);
  return mirrorBootEntries(host.sysroot, target, tries === undefined ? {} : { bootCountingTries: tries });
}
