import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basaltOk } from '../harness/cli.js';
import { baseImage } from '../harness/base-image.js';
import { freePort, sshKeyPair, sshRun, timeBudget, waitForSsh, withVm } from '../harness/vm.js';
import { requireTool, run, tempDir } from '../harness/tools.js';
import type { VmHandle } from '../../src/media/vm.js';

/**
 * The boot path's safety nets, proven by booting the real base image through OVMF and
 * systemd-boot, in one QEMU run (three boots):
 * 1. the boot link the ESP entry names is deleted from the disk before power-on (as ostree's
 *    boot-version swap does) → the initramfs hook recreates it and the machine boots; the boot
 *    is counted (`+3`) and systemd-bless-boot marks it good;
 * 2. a failing health check is dropped into /etc/basalt/health.d and the entry given 2 tries
 *    again → the machine reboots by itself once (tries left), then stays up on its last try with
 *    the entry at `+0-2` ("bad": systemd-boot still boots it, as it is the only one), unblessed,
 *    and the image digest remembered as bad.
 */
const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';

function rootPartitionOffset(disk: string): number {
  const table = JSON.parse(run('sfdisk', ['--json', disk])) as { partitiontable: { sectorsize?: number; partitions: Array<{ start: number; type: string }> } };
  const root = table.partitiontable.partitions.find((p) => p.type.toUpperCase() !== ESP_TYPE);
  if (!root) throw new Error(`${disk} has no root partition`);
  return root.start * (table.partitiontable.sectorsize ?? 512);
}

/** Waits for `pattern` in what the serial console printed after `from`. */
async function waitAfter(vm: VmHandle, from: number, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = vm.serialText().slice(from).match(pattern);
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`serial console did not print ${pattern} within ${timeoutMs / 1000} s; last output:\n${vm.serialText().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

test('deleted boot link → recreated in the initramfs, boot blessed; failing health check → reboots by itself, counter runs down to +0, image remembered', { timeout: 60 * 60_000 }, async () => {
  requireTool('debugfs');
  requireTool('sfdisk');
  const prepared = timeBudget('boot safety: base image (cached per machine) + disk');
  const image = await baseImage();
  const work = await tempDir('boot-safety');
  const key = await sshKeyPair();
  const config = join(work, 'config.toml');
  await writeFile(config, `[[customizations.user]]\nname = "alice"\npassword = "bob"\nkey = "${key.publicLine}"\ngroups = ["sudo"]\n`);
  const out = join(work, 'out');
  basaltOk(['disk', image, '--type', 'raw', '--boot-counting', '3', '--config', config, '-o', out]);
  const digest = basaltOk(['image', 'digest', image]).trim();
  const disk = join(out, 'disk.raw');

  // Delete the boot.N symlink(s) on the root filesystem, as ostree's swap deletes the old ones.
  const fs = `${disk}?offset=${rootPartitionOffset(disk)}`;
  const listing = run('debugfs', ['-R', 'ls -p /ostree', fs]);
  const links = [...listing.matchAll(/^\/\d+\/120777\/\d+\/\d+\/(boot\.[01])\//gm)].map((m) => m[1] as string);
  assert.ok(links.length > 0, `no /ostree/boot.N link on the fresh disk:\n${listing}`);
  for (const l of links) run('debugfs', ['-w', '-R', `rm /ostree/${l}`, fs]);
  assert.doesNotMatch(run('debugfs', ['-R', 'ls -p /ostree', fs]), /\/boot\.[01]\/\d*\/$/m);
  prepared();

  const port = await freePort();
  await withVm('boot safety: three boots', { drives: [disk], snapshot: true, memoryMiB: 2048, cpus: 2, portForwards: [{ host: port, guest: 22 }] }, async (vm) => {
    const sudo = (cmd: string): string => sshRun(port, 'alice', key.privateKey, `echo bob | sudo -S -p "" sh -c '${cmd}'`);
    const firstBoot = timeBudget('boot safety: boot 1 (missing boot link)');
    await vm.waitForSerial(/basalt-boot-link: recreated \/ostree\/boot\.[01]\//, 600_000);
    await vm.waitForSerial(/login:/, 600_000);
    await waitForSsh(port, 'alice', key.privateKey, 300_000);
    firstBoot();
    const bootLink = /ostree=(\S+)/.exec(sudo('cat /proc/cmdline'))?.[1] as string;
    assert.match(sudo(`readlink /sysroot${bootLink}`).trim(), /^\.\.\/\.\.\/\.\.\/deploy\/default\/deploy\/[0-9a-f]{64}\.0$/);
    assert.match(sudo('findmnt -n -o FSTYPE /boot/efi || true'), /vfat/, 'the ESP is mounted (systemd-bless-boot needs it)');
    // systemd-bless-boot ran after boot-complete.target (health checks passed: none installed).
    await waitForUnit(sudo, 'systemd-bless-boot.service', 'active', 300_000);
    assert.equal(sudo('systemctl is-active basalt-health.service').trim(), 'active');
    const entries = sudo('ls /boot/efi/loader/entries');
    const blessed = /^(basalt-default-[0-9a-f]{12}\.0)\.conf$/m.exec(entries);
    assert.ok(blessed, `the entry lost its counter once blessed: ${entries}`);
    const stem = blessed[1] as string;
    const good = JSON.parse(sudo('basalt status --json')) as { status: { booted: { bootEntry: { state: string; file: string } } } };
    assert.deepEqual([good.status.booted.bootEntry.state, good.status.booted.bootEntry.file], ['good', `${stem}.conf`]);
    assert.match(sudo('systemctl list-timers --all basalt-upgrade.timer'), /basalt-upgrade\.timer/);

    // A failing health check, and the entry on trial again with 2 tries (as a new deployment's entry).
    sudo(`printf "#!/bin/sh\\necho disk is on fire\\nexit 3\\n" > /etc/basalt/health.d/50-fail && chmod +x /etc/basalt/health.d/50-fail && mv /boot/efi/loader/entries/${stem}.conf /boot/efi/loader/entries/${stem}+2.conf && sync`);
    const mark = vm.serialText().length;
    const failing = timeBudget('boot safety: boots 2 (reboots itself) and 3 (stays up)');
    try {
      sshRun(port, 'alice', key.privateKey, 'echo bob | sudo -S -p "" systemctl reboot');
    } catch {
      // The connection may drop before ssh sees the command's exit status.
    }
    await waitAfter(vm, mark, /basalt-health: rebooting/, 900_000);
    const second = vm.serialText().length;
    await waitAfter(vm, second, /basalt-health: not rebooting/, 900_000);
    await waitAfter(vm, second, /login:/, 600_000);
    await waitForSsh(port, 'alice', key.privateKey, 300_000);
    failing();
    assert.equal((vm.serialText().slice(mark).match(/basalt-health: 50-fail: failed \(exit 3\)/g) ?? []).length, 2, 'the check failed on both boots');
    assert.match(vm.serialText().slice(mark), /basalt-health:\s+disk is on fire/);
    assert.match(sudo('ls /boot/efi/loader/entries'), new RegExp(`^${stem.replace(/\./g, '\\.')}\\+0-2\\.conf$`, 'm'));
    assert.equal(sudo('systemctl is-failed basalt-health.service || true').trim(), 'failed');
    assert.notEqual(sudo('systemctl is-active systemd-bless-boot.service || true').trim(), 'active');
    const bad = JSON.parse(sudo('basalt status --json')) as { status: { booted: { bootEntry: { state: string; file: string } } } };
    assert.deepEqual([bad.status.booted.bootEntry.state, bad.status.booted.bootEntry.file], ['bad', `${stem}+0-2.conf`]);
    assert.match(sudo('basalt status'), /Boot entry: .*\+0-2\.conf \(BAD/);
    const remembered = JSON.parse(sudo('basalt health bad-images --json')) as Array<{ digest: string; reason: string }>;
    assert.deepEqual(remembered.map((r) => [r.digest, r.reason]), [[digest, 'health check 50-fail failed']]);
  });
});

async function waitForUnit(sudo: (cmd: string) => string, unit: string, state: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = sudo(`systemctl is-active ${unit} || true`).trim();
    if (last === state) return;
    await new Promise((r) => setTimeout(r, 3000));
  }
  throw new Error(`${unit} is ${last}, not ${state}, after ${timeoutMs / 1000} s`);
}
