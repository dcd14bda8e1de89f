import { chmod, copyFile, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BasaltError, ioError } from '../oci/errors.js';
import { runTool } from './run-tool.js';
import { installUpdateUnits } from './units-update.js';
import { installBootSafety } from './units-safety.js';

/**
 * What a base image needs beyond its packages: DHCP networking with systemd-networkd and
 * systemd-resolved, SSH host keys made at first boot (the build's are removed), and basalt
 * itself on Debian's Node.js.
 */

/** DHCP on every wired interface, by both naming schemes (predictable en*, legacy eth*). */
const DHCP_NETWORK = `# Written by basalt base build: DHCP on wired interfaces.
[Match]
Name=en* eth*

[Network]
DHCP=yes
`;

/** sshd refuses to start without host keys, and the image must not carry the build's. */
const SSH_HOSTKEYS_UNIT = `# Written by basalt base build: host keys are per machine, made at first boot.
[Unit]
Description=Generate SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
`;

/**
 * Kernel arguments every basalt base carries, as bootc images do, through kargs.d: the console
 * on both the screen and the first serial port (appliances and VMs are often headless; the
 * last console= is /dev/console, so boot messages reach the serial line).
 */
const CONSOLE_KARGS = `# Written by basalt base build.
kargs = ["console=tty0", "console=ttyS0,115200n8"]
`;

/**
 * The signature policy updates consult, as Debian's containers-common ships it: accept
 * anything until the owner runs `basalt policy init --key …` (docs/trust.md). Without a
 * policy file every update would be refused, as podman refuses to pull.
 */
const DEFAULT_POLICY = `${JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }], transports: { 'docker-daemon': { '': [{ type: 'insecureAcceptAnything' }] } } }, null, 2)}\n`;

const BASALT_WRAPPER = `#!/usr/bin/node
// basalt on the image's own Node.js (Debian's nodejs package).
import('/usr/lib/basalt/basalt.mjs');
`;

const UNITS = ['systemd-networkd.service', 'systemd-resolved.service', 'basalt-ssh-hostkeys.service'];

export async function configureRoot(root: string, basalt: BasaltFiles): Promise<void> {
  try {
    await mkdir(join(root, 'etc/systemd/network'), { recursive: true });
    await writeFile(join(root, 'etc/systemd/network/80-basalt-dhcp.network'), DHCP_NETWORK);
    await writeFile(join(root, 'usr/lib/systemd/system/basalt-ssh-hostkeys.service'), SSH_HOSTKEYS_UNIT);
    await mkdir(join(root, 'usr/lib/bootc/kargs.d'), { recursive: true });
    await writeFile(join(root, 'usr/lib/bootc/kargs.d/10-basalt-console.toml'), CONSOLE_KARGS);
    await mkdir(join(root, 'etc/containers'), { recursive: true });
    await writeFile(join(root, 'etc/containers/policy.json'), DEFAULT_POLICY, { flag: 'wx' }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  } catch (e) {
    throw ioError(`configuring ${root}`, e);
  }
  // systemctl in a chroot works offline: it only makes the [Install] symlinks.
  await runTool('chroot', [root, 'systemctl', 'enable', ...UNITS], { what: `enabling ${UNITS.join(', ')} in ${root}`, debianPackage: 'coreutils' });
  await installUpdateUnits(root);
  await installBootSafety(root);
  await installBasalt(root, basalt);
}

/** The files that make basalt run on a device: the bundle and the native zstd binding. */
export interface BasaltFiles {
  bundle: string;
  /** The zstd-napi package directory (with build/Release/binding.node). */
  zstdPackage: string;
}

/** Finds dist/basalt.mjs and zstd-napi next to the running basalt (bundle or compiled tree). */
export async function locateBasaltFiles(): Promise<BasaltFiles> {
  const here = fileURLToPath(import.meta.url);
  const candidates = here.endsWith('basalt.mjs') ? [here] : [];
  for (let dir = dirname(here), i = 0; i < 6; i++, dir = dirname(dir)) candidates.push(join(dir, 'dist/basalt.mjs'));
  let bundle: string | undefined;
  for (const c of candidates) if (await stat(c).then((s) => s.isFile(), () => false)) { bundle = c; break; }
  if (!bundle) throw new BasaltError('not-found', 'basalt base build installs basalt into the image but found no dist/basalt.mjs', { hint: 'run `npm run build` in the basalt checkout first' });
  let zstdPackage: string;
  try {
    zstdPackage = dirname(createRequire(import.meta.url).resolve('zstd-napi/package.json'));
  } catch (e) {
    throw new BasaltError('not-found', 'basalt base build needs the zstd-napi package (basalt\'s zstd binding) and cannot find it', { hint: 'run `npm ci` in the basalt checkout', cause: e });
  }
  return { bundle, zstdPackage };
}

async function copyTree(from: string, to: string, keep: (relative: string) => boolean, relative = ''): Promise<void> {
  await mkdir(join(to, relative), { recursive: true });
  for (const entry of await readdir(join(from, relative), { withFileTypes: true })) {
    const rel = relative ? `${relative}/${entry.name}` : entry.name;
    if (!keep(rel)) continue;
    if (entry.isDirectory()) await copyTree(from, to, keep, rel);
    else if (entry.isFile()) await copyFile(join(from, rel), join(to, rel));
  }
}

/** Only what runs: no zstd sources, object files or type declarations. */
function zstdRuntimeFile(rel: string): boolean {
  return rel === 'package.json' || rel === 'binding.js' || rel === 'LICENSE' || rel === 'NOTICE' || rel === 'dist' || /^dist\/[^/]+\.js$/.test(rel) || rel === 'build' || rel === 'build/Release' || rel === 'build/Release/binding.node';
}

async function installBasalt(root: string, files: BasaltFiles): Promise<void> {
  const lib = join(root, 'usr/lib/basalt');
  try {
    await mkdir(lib, { recursive: true });
    await copyFile(files.bundle, join(lib, 'basalt.mjs'));
    // The bundle's lazily loaded libraries live in chunks next to it (see scripts/bundle.mjs).
    await copyTree(join(dirname(files.bundle), 'chunks'), join(lib, 'chunks'), (rel) => rel.endsWith('.mjs'));
    await copyTree(files.zstdPackage, join(lib, 'node_modules/zstd-napi'), zstdRuntimeFile);
    await stat(join(lib, 'node_modules/zstd-napi/build/Release/binding.node'));
    await writeFile(join(root, 'usr/bin/basalt'), BASALT_WRAPPER);
    await chmod(join(root, 'usr/bin/basalt'), 0o755);
  } catch (e) {
    throw ioError(`installing basalt into ${root}`, e);
  }
}
