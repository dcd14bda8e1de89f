import { lstat, mkdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError } from '../../oci/errors.js';
import { writeFileAtomic } from '../../oci/fsutil.js';
import { runTool } from '../../media/run-tool.js';
import { createUsers, setPassword } from '../users.js';
import { installRootKeys } from '../install.js';
import type { StagedInstall } from '../to-disk.js';
import type { Kickstart, KsWarning, NetworkDevice } from './types.js';

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(() => true, () => false);
}

/**
 * Applies the kickstart's system settings to the staged deployment's /etc (and the stateroot's
 * /var for homes): local /etc changes, which ostree's 3-way merge carries into every later
 * deployment. Returns the settings that turned out to have no effect on this image.
 */
export async function configureDeployment(ks: Kickstart, staged: StagedInstall): Promise<KsWarning[]> {
  const warnings: KsWarning[] = [];
  const dep = staged.deployment;
  const etc = join(dep, 'etc');
  const keysOf = (name: string): string[] => ks.sshkeys.filter((k) => k.username === name).map((k) => k.key);
  await createUsers(dep, staged.stateVar, ks.users.map((u) => ({
    name: u.name,
    groups: u.groups,
    ...(u.password !== undefined ? { password: u.password, crypted: u.crypted } : {}),
    ...(keysOf(u.name).length ? { key: keysOf(u.name).join('\n') } : {}),
  })));
  if (ks.rootpw) await setPassword(dep, 'root', ks.rootpw);
  if (keysOf('root').length) await installRootKeys(dep, `${keysOf('root').join('\n')}\n`);
  if (ks.hostname) await writeFileAtomic(join(etc, 'hostname'), `${ks.hostname}\n`, 0o644);
  if (ks.timezone) await setTimezone(dep, ks.timezone.zone);
  if (ks.lang) {
    await writeFileAtomic(join(etc, 'locale.conf'), `LANG=${ks.lang}\n`, 0o644);
    await mkdir(join(etc, 'default'), { recursive: true });
    await writeFileAtomic(join(etc, 'default', 'locale'), `LANG=${ks.lang}\n`, 0o644); // Debian's pam_env reads this one
  }
  if (ks.keyboard?.keymap) {
    await writeFileAtomic(join(etc, 'vconsole.conf'), `KEYMAP=${ks.keyboard.keymap}\n`, 0o644);
    if (!(await exists(join(dep, 'usr/bin/loadkeys'))) && !(await exists(join(dep, 'bin/loadkeys'))))
      warnings.push({ line: 0, message: `keyboard ${ks.keyboard.keymap} has no effect on this image: it has no loadkeys (kbd); /etc/vconsole.conf is written for when it does` });
  }
  for (const [i, net] of ks.networks.entries()) await writeNetwork(etc, i, net);
  if (ks.networks.length) {
    if (await unitExists(dep, 'systemd-networkd.service')) await systemctl(dep, 'enable', 'systemd-networkd.service', 'network');
    else warnings.push({ line: 0, message: 'network has no effect on this image: it has no systemd-networkd; the .network files are written for when it does' });
  }
  for (const s of ks.services.enabled) await systemctl(dep, 'enable', s, 'services --enabled');
  for (const s of ks.services.disabled) await systemctl(dep, 'disable', s, 'services --disabled');
  return warnings;
}

async function setTimezone(dep: string, zone: string): Promise<void> {
  if (!(await exists(join(dep, 'usr/share/zoneinfo', zone))))
    throw new BasaltError('invalid', `timezone ${zone}: the image has no /usr/share/zoneinfo/${zone}`, { hint: 'check the zone name, or add tzdata to the image' });
  await rm(join(dep, 'etc/localtime'), { force: true });
  await symlink(`../usr/share/zoneinfo/${zone}`, join(dep, 'etc/localtime'));
  await writeFileAtomic(join(dep, 'etc/timezone'), `${zone}\n`, 0o644); // Debian's tzdata reads it
}

/** A systemd-networkd file per network line; 20- sorts before the base image's catch-all 80-basalt-dhcp.network. */
async function writeNetwork(etc: string, index: number, net: NetworkDevice): Promise<void> {
  const dev = net.device;
  const match = dev === undefined || dev === 'link' ? 'Type=ether\nName=en* eth*' : /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(dev) ? `MACAddress=${dev.toLowerCase()}` : `Name=${dev}`;
  const text = `# Written by basalt install kickstart (network --bootproto=dhcp${dev ? ` --device=${dev}` : ''})\n[Match]\n${match}\n\n[Network]\nDHCP=yes\n`;
  await mkdir(join(etc, 'systemd/network'), { recursive: true });
  await writeFileAtomic(join(etc, 'systemd/network', `20-kickstart-${index}-${(dev ?? 'link').replace(/[^A-Za-z0-9_.-]/g, '_')}.network`), text, 0o644);
}

async function unitExists(dep: string, unit: string): Promise<boolean> {
  for (const dir of ['etc/systemd/system', 'usr/lib/systemd/system', 'lib/systemd/system']) if (await exists(join(dep, dir, unit))) return true;
  return false;
}

/** systemctl --root makes exactly the symlinks `enable`/`disable` would on the running system, offline. */
async function systemctl(dep: string, verb: 'enable' | 'disable', unit: string, what: string): Promise<void> {
  const r = await runTool('systemctl', [`--root=${dep}`, '--no-reload', verb, unit], { allowFailure: true });
  if (r.code !== 0) throw new BasaltError('invalid', `${what}: systemctl ${verb} ${unit} in the new system failed: ${(r.stderr || r.stdout).trim()}`, { hint: 'check the unit name: the image must ship it' });
}
