import { chmod, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError, ioError } from '../oci/errors.js';
import { writeFileAtomic } from '../oci/fsutil.js';
import { runRepo } from './ostree-tool.js';
import { deployImage, type DeployImageOptions, type DeployImageResult } from './deploy-image.js';
import { initSysroot, repoOf, stateVarDir, deployDir } from './sysroot.js';
import { espFiles, mirrorBootEntries, type EspFile, type MirrorOptions, type MirrorResult } from './bootentries.js';
import { directoryEsp } from './esp-target.js';

export interface InstallOptions extends Omit<DeployImageOptions, 'stateroot'> {
  /** Default `default`. */
  stateroot?: string;
  /** A file of SSH public keys for root (installed through a tmpfiles.d snippet, as bootc does). */
  rootSshAuthorizedKeys?: string;
  /** Also write the ESP files into this directory (a staging tree for the FAT image). */
  espDir?: string;
  esp?: MirrorOptions;
  /**
   * How the booted system finds its ESP (`PARTUUID=…`, `UUID=…`): an /etc/fstab line mounts it
   * at /boot/efi, where bootctl, systemd-bless-boot and basalt's entry mirror look for it.
   */
  espMountSpec?: string;
}

/** Where the booted system mounts the ESP; ostree bind-mounts the sysroot's /boot on /boot. */
export const ESP_MOUNT_POINT = '/boot/efi';

export interface InstallResult extends DeployImageResult {
  stateroot: string;
  /** What the ESP must hold: kernels, initramfs, entries, loader.conf. */
  espFiles: EspFile[];
  /** When espDir was given: what was written there. */
  espMirror?: MirrorResult;
}

/**
 * Installs an image into a plain directory that becomes a root filesystem (for disks,
 * `mkfs.ext4 -d` of it): an ostree sysroot with one deployment, the image's /var copied into
 * the stateroot's /var (only at install; updates never touch /var), root's SSH keys, and the
 * ESP content for systemd-boot. No mounts, no loop devices. Refuses a directory whose stateroot
 * already has a deployment: installing is for fresh roots; updates go through upgrade.
 */
export async function installToFilesystem(root: string, imageName: string, options: InstallOptions = {}): Promise<InstallResult> {
  const stateroot = options.stateroot ?? 'default';
  if (options.espMountSpec !== undefined) checkMountSpec(options.espMountSpec);
  await initSysroot(root, stateroot);
  const existing = await readdir(join(root, 'ostree', 'deploy', stateroot, 'deploy')).catch(() => []);
  if (existing.some((n) => /^[0-9a-f]{64}\.\d+$/.test(n)))
    throw new BasaltError('usage', `${root} already has a deployment in stateroot ${stateroot}`, { hint: 'install into an empty directory, or use another --stateroot' });
  const keys = options.rootSshAuthorizedKeys === undefined ? undefined : await readKeys(options.rootSshAuthorizedKeys);
  const deployed = await deployImage(root, imageName, { ...options, stateroot });
  const { checksum, deploySerial } = deployed.deployment;
  await copyImageVar(root, stateroot, checksum);
  if (keys !== undefined) await installRootKeys(deployDir(root, stateroot, checksum, deploySerial), keys);
  if (options.espMountSpec !== undefined) await addEspMount(root, deployDir(root, stateroot, checksum, deploySerial), options.espMountSpec);
  const files = await espFiles(root, options.esp);
  const result: InstallResult = { ...deployed, stateroot, espFiles: files };
  if (options.espDir) {
    await mkdir(options.espDir, { recursive: true });
    result.espMirror = await mirrorBootEntries(root, directoryEsp(options.espDir), options.esp);
  }
  return result;
}

async function readKeys(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw ioError(`--root-ssh-authorized-keys ${file}`, e);
  }
  const keys = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (keys.length === 0) throw new BasaltError('invalid', `--root-ssh-authorized-keys ${file} holds no keys`);
  for (const k of keys) if (!/^(ssh-|ecdsa-|sk-|[a-z0-9-]+@openssh\.com)/.test(k) && !/ (ssh-|ecdsa-|sk-)/.test(k)) throw new BasaltError('invalid', `${file}: "${k.slice(0, 40)}" is not an SSH public key`);
  return `${keys.join('\n')}\n`;
}

/**
 * ostree ignores the image's /var when deploying (it is the shared, never rolled back /var);
 * at install it is seeded from the image, copied (not hardlinked into the repository: /var is
 * written to).
 */
async function copyImageVar(root: string, stateroot: string, checksum: string): Promise<void> {
  // ostree 2022.7's --allow-noent does not cover a missing --subpath: ask first.
  const hasVar = await runRepo(repoOf(root), ['ls', checksum, '/var'], { what: 'looking for /var in the image' }).then(() => true, () => false);
  if (!hasVar) return;
  await runRepo(repoOf(root), ['checkout', '--union', '--force-copy', '--allow-noent', '--subpath=/var', checksum, stateVarDir(root, stateroot)], { what: `copying the image's /var into ${stateVarDir(root, stateroot)}` });
}

/**
 * bootc's way: a tmpfiles.d snippet in the deployment's /etc writes root's authorized_keys at
 * boot, wherever /root points (/var/roothome on bootc-style images). It is a local /etc change,
 * so it survives updates through ostree's /etc merge.
 */
export async function installRootKeys(deployment: string, keys: string): Promise<void> {
  const snippet = [
    '# Written by basalt install --root-ssh-authorized-keys',
    'd /root/.ssh 0700 root root -',
    `f~ /root/.ssh/authorized_keys 0600 root root - ${Buffer.from(keys).toString('base64')}`,
    '',
  ].join('\n');
  const path = join(deployment, 'etc', 'tmpfiles.d', 'basalt-root-ssh.conf');
  await writeFileAtomic(path, snippet, 0o644);
  await chmod(path, 0o644);
}

/**
 * The ESP's fstab line goes into the deployment's /etc (a local change that ostree's /etc merge
 * carries into every later deployment); the mount point is made in the sysroot's /boot. nofail:
 * a missing ESP must not stop the boot that would let the owner repair it.
 */
function checkMountSpec(spec: string): void {
  if (!/^(PARTUUID|UUID|LABEL|PARTLABEL)=\S+$/.test(spec) && !/^\/dev\/\S+$/.test(spec))
    throw new BasaltError('usage', `ESP mount spec "${spec}" is not PARTUUID=…, UUID=…, LABEL=…, PARTLABEL=… or a /dev path`);
}

async function addEspMount(root: string, deployment: string, spec: string): Promise<void> {
  await mkdir(join(root, 'boot', 'efi'), { recursive: true });
  const fstab = join(deployment, 'etc', 'fstab');
  const current = await readFile(fstab, 'utf8').catch(() => '');
  const kept = current.split('\n').filter((l) => l !== '' && !/^\S+\s+\/boot\/efi\s/.test(l));
  kept.push(`${spec} ${ESP_MOUNT_POINT} vfat umask=0077,shortname=winnt,nofail 0 2`);
  await writeFileAtomic(fstab, `${kept.join('\n')}\n`, 0o644);
}
