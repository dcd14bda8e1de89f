import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basaltOk } from '../harness/cli.js';
import { baseImage } from '../harness/base-image.js';
import { startRegistry } from '../harness/registry.js';
import { SHARED, requireTool, run, tempDir } from '../harness/tools.js';
import { freePort, sshKeyPair, sshRun, timeBudget, waitForSsh, withVm } from '../harness/vm.js';

/**
 * Issue 7's acceptance under QEMU (TCG, OVMF): an installer ISO built from a small appliance
 * (the cached base image plus one layer) boots on an empty virtual disk, installs from a
 * loopback registry (10.0.2.2 from the guest) as the example kickstart asks, reboots itself
 * into the installed system, and the result is checked over ssh: partitions, the user, its
 * group and password, root's password, enabled services. The second test does the same with
 * --embed and no network (QEMU's user network with restrict=on: the forwarded ssh port still
 * works, the guest reaches nothing, and the registry is stopped too): the image comes from the
 * ISO. Each install is one VM run: the ISO boot, the install, the reboot into the disk.
 * Before its install, the first test boots the same ISO twice to fail: with no disk at all,
 * and with an empty disk but no way to reach the registry; each time the installer stops
 * with its message on the serial console and the disk stays as it was.
 */
const MARKER = '/usr/share/basalt-installer-test/version';

/**
 * One install takes 35-40 minutes under TCG on this 2-core machine (the guest's node reads
 * the image at well under 1 MB/s), so the two runs cannot fit the suite's 60-minute budget.
 * They run when BASALT_E2E_LONG=1 (`BASALT_E2E_LONG=1 ./scripts/test
 * test/e2e/installer-iso.test.ts`); otherwise they are reported as skipped, with this reason.
 */
const SLOW = process.env.BASALT_E2E_LONG === '1' ? false : 'installer ISO installs take ~40 min each under TCG; set BASALT_E2E_LONG=1 to run them';

function verifyCrypt(hash: string, password: string): boolean {
  // The host's libcrypt (through Python's crypt module) checks the guest's hash independently.
  const r = spawnSync('python3', ['-W', 'ignore', '-c', 'import crypt,sys; h=sys.argv[1]; print(crypt.crypt(sys.argv[2], h) == h)', hash, password], { encoding: 'utf8' });
  return r.stdout.trim() === 'True';
}

interface Prepared {
  work: string;
  env: Record<string, string>;
  hostRef: string;
  port: string;
  ks: string;
  registriesConf: string;
  key: Awaited<ReturnType<typeof sshKeyPair>>;
  registry: Awaited<ReturnType<typeof startRegistry>>;
}

/** The appliance (cached base + one layer) in a loopback registry, the kickstart and a key pair. */
async function prepare(name: string): Promise<Prepared> {
  for (const t of ['qemu-system-x86_64', 'qemu-img', 'python3', 'mksquashfs']) requireTool(t);
  const prepared = timeBudget(`installer-iso ${name}: base (cached) + appliance layer + push`);
  const base = await baseImage();
  const work = await tempDir('installer-e2e');
  const env = { BASALT_STORE: join(work, 'store') };
  const layer = join(work, 'layer');
  await mkdir(join(layer, 'usr/share/basalt-installer-test'), { recursive: true });
  await writeFile(join(layer, MARKER), 'appliance-v1\n');
  basaltOk(['image', 'append', base, layer, '--owner-root', '-t', 'localhost/iso/app:v1'], { env });
  const registry = await startRegistry({ flavour: 'open' });
  const port = registry.host.split(':')[1] as string;
  const hostRef = `docker://${registry.host}/appliance/lamp:latest`;
  basaltOk(['image', 'copy', '--dest-tls-verify=false', 'localhost/iso/app:v1', hostRef], { env });
  const key = await sshKeyPair();
  const ks = join(work, 'ks.cfg');
  const example = await readFile(join(SHARED, 'examples/appliance/mykickstart.ks'), 'utf8');
  await writeFile(ks, `${example.replace('REGISTRY', `10.0.2.2:${port}`)}sshkey --username=operator "${key.publicLine}"\n`);
  const registriesConf = join(work, 'registries.conf');
  await writeFile(registriesConf, `[[registry]]\nlocation = "10.0.2.2:${port}"\ninsecure = true\n`);
  prepared();
  return { work, env, hostRef, port, ks, registriesConf, key, registry };
}

function buildIso(p: Prepared, embed: boolean): string {
  const clock = timeBudget(`installer-iso: build${embed ? ' --embed' : ''}`);
  const iso = join(p.work, embed ? 'embed.iso' : 'net.iso');
  console.log(basaltOk(['iso', p.hostRef, '--tls-verify=false', '--kickstart', p.ks, '--registries-conf', p.registriesConf, '-o', iso, ...(embed ? ['--embed'] : [])], { env: p.env }));
  clock();
  return iso;
}

/** Boots the ISO with `drives` before it and returns the installer's FAILED line. */
async function bootToFailure(iso: string, name: string, drives: string[], restrictNetwork: boolean): Promise<string> {
  return withVm(`installer-iso: ${name} (ISO boot to the installer's failure)`, { drives: [...drives, { path: iso, format: 'iso' }], memoryMiB: 3072, cpus: 2, restrictNetwork }, async (vm) => {
    await vm.waitForSerial(/basalt-installer: started/, 900_000);
    const failed = await vm.waitForSerial(/basalt-installer: (FAILED: .*|installation complete)/, 1_200_000);
    const lines = vm.serialText().split('\n').filter((l) => l.includes('basalt-installer')).join('\n');
    console.log(`[installer-iso] ${name}:\n${lines}`);
    assert.match(failed[1] as string, /^FAILED: /, lines);
    return lines;
  });
}

/** No disk at all, then no registry to reach: the installer stops, saying why; the disk is untouched. */
async function failurePaths(p: Prepared, iso: string): Promise<void> {
  const noDisk = await bootToFailure(iso, 'no disk', [], false);
  assert.match(noDisk, /no disk to install onto/);
  const disk = join(p.work, 'untouched.qcow2');
  const pristine = join(p.work, 'pristine.qcow2');
  for (const d of [disk, pristine]) run('qemu-img', ['create', '-q', '-f', 'qcow2', d, '8G']);
  const offline = await bootToFailure(iso, 'registry unreachable', [disk], true);
  assert.match(offline, new RegExp(`10\\.0\\.2\\.2:${p.port}`), 'the message names the registry');
  // qemu-img compare exits 0 only when both images read the same everywhere.
  run('qemu-img', ['compare', '-q', pristine, disk]);
}

/** One VM run: the ISO boots, installs, the guest reboots into the disk; then the checks over ssh. */
async function installAndCheck(p: Prepared, iso: string, name: string, restrictNetwork = false): Promise<void> {
  const disk = join(p.work, `${name}.qcow2`);
  run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '8G']);
  const sshPort = await freePort();
  // The empty disk first: the firmware falls through to the CD, and after the install boots the disk.
  // 3 GiB: the installer's root is a tmpfs overlay and the install stages the image in it.
  await withVm(`installer-iso: ${name} (ISO boot, install, reboot into the disk)`, { drives: [disk, { path: iso, format: 'iso' }], memoryMiB: 3072, cpus: 2, restrictNetwork, portForwards: [{ host: sshPort, guest: 22 }] }, async (vm) => {
    const installing = timeBudget(`installer-iso: ${name}: first boot to "installation complete"`);
    await vm.waitForSerial(/basalt-installer: started/, 900_000);
    const done = await vm.waitForSerial(/basalt-installer: (installation complete|FAILED.*)/, 2_700_000);
    installing();
    assert.equal(done[1], 'installation complete', vm.serialText().split('\n').filter((l) => l.includes('basalt-installer')).join('\n'));
    const rebooting = timeBudget(`installer-iso: ${name}: reboot into the installed system to ssh`);
    await vm.waitForSerial(/login:/, 900_000);
    await waitForSsh(sshPort, 'operator', p.key.privateKey, 180_000);
    rebooting();
    const ssh = (cmd: string): string => sshRun(sshPort, 'operator', p.key.privateKey, cmd);
    const sudo = (cmd: string): string => ssh(`echo ${Buffer.from(cmd).toString('base64')} | base64 -d > /tmp/cmd.sh && echo embedded | sudo -S -p "" sh /tmp/cmd.sh`);
    assert.equal(ssh(`cat ${MARKER}`).trim(), 'appliance-v1');
    const layout = JSON.parse(sudo('sfdisk -J /dev/vda')) as { partitiontable: { label: string; partitions: { type: string; size: number }[] } };
    console.log(`[installer-iso] ${name}: ${JSON.stringify(layout.partitiontable)}`);
    assert.equal(layout.partitiontable.label, 'gpt');
    assert.ok(layout.partitiontable.partitions.some((x) => x.type === 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B'), 'an ESP (reqpart --add-boot)');
    const rootPart = layout.partitiontable.partitions.at(-1);
    assert.ok(rootPart && rootPart.size * 512 > 6 * 1024 ** 3, 'part / --grow fills the 8 GiB disk');
    assert.match(ssh('findmnt -n -o FSTYPE /sysroot'), /ext4/);
    assert.match(ssh('id operator'), /\(sudo\)/);
    const shadow = sudo('getent shadow operator root').trim().split('\n').map((l) => l.split(':'));
    const hashOf = (user: string): string => shadow.find((f) => f[0] === user)?.[1] ?? '';
    assert.ok(verifyCrypt(hashOf('operator'), 'embedded'), `operator's hash ${hashOf('operator')} is "embedded"`);
    assert.ok(verifyCrypt(hashOf('root'), 'embedded'), `root's hash ${hashOf('root')} is "embedded"`);
    assert.equal(sudo('systemctl is-enabled ssh.service').trim(), 'enabled');
    assert.match(sudo('basalt status --format json'), new RegExp(`10\\.0\\.2\\.2:${p.port}/appliance/lamp:latest`), 'the registry stays the update source');
  });
}

test('installer ISO: stops with a message and an untouched disk when there is no disk or no registry; boots on an empty disk, installs from the registry as the kickstart says, reboots into the installed system', { timeout: 90 * 60_000, skip: SLOW }, async () => {
  const p = await prepare('registry');
  try {
    const iso = buildIso(p, false);
    await failurePaths(p, iso);
    await installAndCheck(p, iso, 'registry');
  } finally {
    await p.registry.stop();
  }
});

test('installer ISO with --embed: installs with no network and the registry stopped, the image read from the ISO', { timeout: 60 * 60_000, skip: SLOW }, async () => {
  const p = await prepare('embedded');
  let up = true;
  try {
    const iso = buildIso(p, true);
    await p.registry.stop(); // the embedded install must not need it
    up = false;
    await installAndCheck(p, iso, 'embedded', true);
  } finally {
    if (up) await p.registry.stop();
  }
});
