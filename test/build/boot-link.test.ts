import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readFile, readlink, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { BOOT_LINK_SCRIPT, DRACUT_MODULE_SETUP } from '../../src/build/units-safety.js';
import { kargValue } from '../../src/deploy/bls.js';
import { listDeployments, deployDir } from '../../src/deploy/sysroot.js';
import { requireTool, tempDir } from '../harness/tools.js';
import { ostreeSysroot } from '../deploy/ostree-sysroot.js';

/** The initramfs hook, run by dash (as /bin/sh in Debian's initramfs) against a real ostree sysroot tree. */
async function hook(sysroot: string, cmdline: string): Promise<{ status: number; out: string }> {
  const dir = await tempDir('boot-link');
  await writeFile(join(dir, 'hook.sh'), BOOT_LINK_SCRIPT);
  await writeFile(join(dir, 'cmdline'), `${cmdline}\n`);
  const r = spawnSync('dash', [join(dir, 'hook.sh')], { encoding: 'utf8', env: { ...process.env, BASALT_SYSROOT: sysroot, BASALT_CMDLINE: join(dir, 'cmdline') } });
  return { status: r.status ?? -1, out: r.stdout + r.stderr };
}

async function setup(deploys = 2): Promise<{ sysroot: string; bootLink: string; cmdline: string; target: string; other: string }> {
  const sysroot = await ostreeSysroot(deploys);
  const [d, other] = await listDeployments(sysroot);
  const bootLink = kargValue(d!.options, 'ostree') as string;
  const target = deployDir(sysroot, d!.stateroot, d!.checksum, d!.deploySerial);
  return { sysroot, bootLink, target, other: other ? deployDir(sysroot, other.stateroot, other.checksum, other.deploySerial) : '', cmdline: `root=UUID=x rw ostree=${bootLink} quiet basalt.deployment=default/${d!.checksum}.${d!.deploySerial} console=ttyS0` };
}

test('a present, right boot link is left alone and nothing is printed', async () => {
  requireTool('dash');
  const s = await setup();
  const before = await readlink(join(s.sysroot, s.bootLink));
  assert.deepEqual(await hook(s.sysroot, s.cmdline), { status: 0, out: '' });
  assert.equal(await readlink(join(s.sysroot, s.bootLink)), before);
});

test('boot.N deleted (the boot-version swap) → recreated as ostree makes it: boot.N -> boot.N.0, ../../../deploy/…', async () => {
  const s = await setup();
  const top = s.bootLink.split('/').slice(0, 3).join('/');
  const ostreeTarget = await readlink(join(s.sysroot, s.bootLink));
  await rm(join(s.sysroot, top));
  await rm(join(s.sysroot, `${top}.0`), { recursive: true, force: true });
  await rm(join(s.sysroot, `${top}.1`), { recursive: true, force: true });
  const r = await hook(s.sysroot, s.cmdline);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /basalt-boot-link: recreated \/ostree\/boot\.[01]\//);
  assert.equal(await readlink(join(s.sysroot, s.bootLink)), ostreeTarget, 'the same relative link ostree wrote');
  assert.equal(await realpath(join(s.sysroot, s.bootLink)), await realpath(s.target));
  assert.match(await readlink(join(s.sysroot, top)), /^boot\.[01]\.0$/);
  assert.deepEqual(await hook(s.sysroot, s.cmdline), { status: 0, out: '' }, 'a second run has nothing to do');
});

test('only the leaf link deleted, or boot.N dangling → the missing pieces are made', async () => {
  const s = await setup();
  await rm(join(s.sysroot, s.bootLink));
  let r = await hook(s.sysroot, s.cmdline);
  assert.equal(r.status, 0, r.out);
  assert.equal(await realpath(join(s.sysroot, s.bootLink)), await realpath(s.target));
  const top = s.bootLink.split('/').slice(0, 3).join('/');
  const sub = await readlink(join(s.sysroot, top));
  await rm(join(s.sysroot, 'ostree', sub), { recursive: true });
  assert.ok((await lstat(join(s.sysroot, top))).isSymbolicLink());
  r = await hook(s.sysroot, s.cmdline);
  assert.equal(r.status, 0, r.out);
  assert.equal(await readlink(join(s.sysroot, top)), sub, 'the dangling boot.N link keeps its target, which is made');
  assert.equal(await realpath(join(s.sysroot, s.bootLink)), await realpath(s.target));
});

test('a link that names another deployment is kept (warning); without the kargs the hook does nothing', async () => {
  const s = await setup();
  await rm(join(s.sysroot, s.bootLink));
  await symlink(`../../../deploy/default/deploy/${s.other.slice(s.other.lastIndexOf('/') + 1)}`, join(s.sysroot, s.bootLink));
  const r = await hook(s.sysroot, s.cmdline);
  assert.equal(r.status, 0);
  assert.match(r.out, /warning: .* names another deployment/);
  assert.equal(await realpath(join(s.sysroot, s.bootLink)), await realpath(s.other));
  await rm(join(s.sysroot, s.bootLink));
  assert.deepEqual(await hook(s.sysroot, `root=UUID=x rw ostree=${s.bootLink}`), { status: 0, out: '' });
  await assert.rejects(lstat(join(s.sysroot, s.bootLink)), 'nothing made without basalt.deployment=');
});

test('refused: missing deployment, stateroot mismatch, paths that try to leave /ostree', async () => {
  const s = await setup(1);
  await rm(join(s.sysroot, s.bootLink));
  const csum = /basalt\.deployment=default\/([0-9a-f]{64})\.0/.exec(s.cmdline)![1] as string;
  const cases: Array<[string, RegExp]> = [
    [s.cmdline.replace(`${csum}.0`, `${csum}.7`), /does not exist/],
    [s.cmdline.replace('basalt.deployment=default/', 'basalt.deployment=other/'), /not in stateroot default/],
    [s.cmdline.replace('basalt.deployment=default/', 'basalt.deployment=default/../../'), /not STATEROOT\/CHECKSUM\.SERIAL|not in stateroot/],
    [s.cmdline.replace(`ostree=${s.bootLink}`, `ostree=${s.bootLink.replace('/ostree/boot.', '/ostree/../boot.')}`), /not boot\.0 or boot\.1|is not \/ostree/],
    [s.cmdline.replace(`ostree=${s.bootLink}`, `ostree=${s.bootLink}/extra`), /is not \/ostree\/boot\.N/],
  ];
  for (const [cmdline, message] of cases) {
    const r = await hook(s.sysroot, cmdline);
    assert.equal(r.status, 1, `${cmdline}: ${r.out}`);
    assert.match(r.out, message);
    await assert.rejects(lstat(join(s.sysroot, s.bootLink)));
  }
});

test('the dracut module installs the hook and orders it into initrd-root-fs.target (bash -n clean)', async () => {
  requireTool('bash');
  const dir = await tempDir('dracut-module');
  await writeFile(join(dir, 'module-setup.sh'), DRACUT_MODULE_SETUP);
  const r = spawnSync('bash', ['-n', join(dir, 'module-setup.sh')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(await readFile(join(dir, 'module-setup.sh'), 'utf8'), /initrd-root-fs\.target\.wants\/basalt-boot-link\.service/);
});
