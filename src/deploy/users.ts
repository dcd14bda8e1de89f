import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { chown, mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError } from '../oci/errors.js';

const run = promisify(execFile);

/** A user to create at install time (bootc-image-builder's [[customizations.user]]). */
export interface InstallUser {
  name: string;
  /** Plain text, or a crypt(3) hash when it starts with `$` (unless `crypted` says otherwise). */
  password?: string;
  /** Whether `password` is a crypt(3) hash (kickstart's --iscrypted / --plaintext); default: it starts with `$`. */
  crypted?: boolean;
  /** SSH public keys, one per line. */
  key?: string;
  groups: readonly string[];
}

async function tool(cmd: string, args: string[], what: string, input?: string): Promise<string> {
  try {
    const child = run(cmd, args, { maxBuffer: 16 * 1024 * 1024 });
    if (input !== undefined) {
      child.child.stdin?.end(input);
    }
    return (await child).stdout;
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT') throw new BasaltError('tool', `${what}: ${cmd} is not installed`, { hint: 'install the passwd package' });
    throw new BasaltError('tool', `${what}: ${cmd} failed: ${(err.stderr ?? err.message).trim()}`);
  }
}

/** The numeric uid and gid of a user in a tree's /etc/passwd. */
async function ids(etcDir: string, name: string): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile(join(etcDir, 'passwd'), 'utf8');
  const line = passwd.split('\n').find((l) => l.startsWith(`${name}:`));
  const fields = line?.split(':');
  if (!fields || fields.length < 4) throw new BasaltError('invalid', `user ${name} was not written to ${etcDir}/passwd`);
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

async function groupExists(etcDir: string, name: string): Promise<boolean> {
  const group = await readFile(join(etcDir, 'group'), 'utf8').catch(() => '');
  return group.split('\n').some((l) => l.startsWith(`${name}:`));
}

/**
 * Creates users in a deployment's /etc with the host's shadow tools (`useradd --root`), sets
 * their passwords (hashed with SHA-512 crypt when given in plain text) and SSH keys. Homes go
 * to the stateroot's /var/home, which is what /home points at on an ostree system.
 */
export async function createUsers(deployment: string, stateVar: string, users: readonly InstallUser[]): Promise<void> {
  for (const user of users) {
    const what = `user ${user.name}`;
    // A group of the user's name may already exist (Debian ships `operator`): like Anaconda,
    // make it the primary group instead of failing on --user-group.
    const primary = (await groupExists(join(deployment, 'etc'), user.name)) ? ['--gid', user.name] : ['--user-group'];
    const args = ['--root', deployment, '--no-create-home', '--home-dir', `/var/home/${user.name}`, '--shell', '/bin/bash', ...primary];
    if (user.groups.length) args.push('--groups', user.groups.join(','));
    await tool('useradd', [...args, user.name], what);
    if (user.password !== undefined) await setPassword(deployment, user.name, { password: user.password, crypted: user.crypted ?? user.password.startsWith('$') });
    const { uid, gid } = await ids(join(deployment, 'etc'), user.name);
    const home = join(stateVar, 'home', user.name);
    await mkdir(home, { recursive: true, mode: 0o700 });
    await chown(home, uid, gid);
    if (user.key) {
      const ssh = join(home, '.ssh');
      await mkdir(ssh, { mode: 0o700 });
      await writeFile(join(ssh, 'authorized_keys'), `${user.key.trim()}\n`, { mode: 0o600 });
      await chmod(ssh, 0o700);
      await chown(ssh, uid, gid);
      await chown(join(ssh, 'authorized_keys'), uid, gid);
    }
  }
}

/**
 * Sets an existing account's password in a deployment's /etc (hashed with SHA-512 crypt when
 * given in plain text), and/or locks it (usermod --lock: a `!` before the hash).
 */
export async function setPassword(deployment: string, name: string, how: { password?: string; crypted: boolean; lock?: boolean }): Promise<void> {
  const what = `password of ${name}`;
  if (how.password !== undefined) {
    const hash = how.crypted ? how.password : (await tool('openssl', ['passwd', '-6', '-stdin'], what, `${how.password}\n`)).trim();
    await tool('chpasswd', ['--root', deployment, '--encrypted'], what, `${name}:${hash}\n`);
  }
  if (how.lock) await tool('usermod', ['--root', deployment, '--lock', name], what);
}
