import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basaltOk } from '../harness/cli.js';
import { baseImage } from '../harness/base-image.js';
import { startRegistry } from '../harness/registry.js';
import { freePort, sshKeyPair, sshRun, timeBudget, waitForSsh, withVm } from '../harness/vm.js';
import { tempDir } from '../harness/tools.js';

/**
 * Issue 5's acceptance in the guest, against a loopback registry the guest reaches at
 * 10.0.2.2 (QEMU's user network maps it to the host's loopback): v1 and v2 are the base image
 * plus one small layer each. Boots: v1 → `upgrade --apply` → v2 → `rollback --apply` → v1 →
 * staged `upgrade` + an /etc change + plain reboot → v2 again, which proves ostree finalised
 * the staged deployment at shutdown with the /etc change merged, and that the ESP mirror ran
 * after it (systemd-boot reads only the ESP, so booting v2 needs its entry there).
 */
const VERSION_FILE = '/usr/share/basalt-update-test/version';

interface GuestStatus {
  status: { booted: { image: { imageDigest: string } } | null; staged: { image: { imageDigest: string } } | null; rollback: { image: { imageDigest: string } } | null };
}

test('in the guest: upgrade --apply boots v2, rollback --apply boots v1, a staged upgrade is finalised at shutdown', { timeout: 60 * 60_000 }, async () => {
  const prepared = timeBudget('update: base (cached) + v1/v2 + push + disk');
  const base = await baseImage();
  const work = await tempDir('update-e2e');
  const env = { BASALT_STORE: join(work, 'store') };
  for (const v of ['v1', 'v2']) {
    const dir = join(work, v);
    await mkdir(join(dir, 'usr/share/basalt-update-test'), { recursive: true });
    await writeFile(join(dir, VERSION_FILE), `${v}\n`);
    basaltOk(['image', 'append', base, dir, '--owner-root', '-t', `localhost/upd/app:${v}`], { env });
  }
  const registry = await startRegistry({ flavour: 'open' });
  try {
    const hostRef = `docker://${registry.host}/upd/app:latest`;
    const guestRef = `docker://10.0.2.2:${registry.host.split(':')[1] as string}/upd/app:latest`;
    const push = (tag: string): string => {
      basaltOk(['image', 'copy', '--dest-tls-verify=false', `localhost/upd/app:${tag}`, hostRef], { env });
      return basaltOk(['image', 'digest', '--tls-verify=false', hostRef], { env }).trim();
    };
    const d1 = push('v1');
    const key = await sshKeyPair();
    const config = join(work, 'config.toml');
    await writeFile(config, `[[customizations.user]]\nname = "alice"\npassword = "bob"\nkey = "${key.publicLine}"\ngroups = ["sudo"]\n`);
    const out = join(work, 'out');
    basaltOk(['disk', hostRef, '--tls-verify=false', '--type', 'qcow2', '--config', config, '-o', out, '--target-imgref', guestRef], { env });
    const d2 = push('v2');
    assert.notEqual(d1, d2);
    prepared();

    const port = await freePort();
    await withVm('update: four boots', { drives: [join(out, 'disk.qcow2')], snapshot: true, memoryMiB: 2048, cpus: 2, portForwards: [{ host: port, guest: 22 }] }, async (vm) => {
      const run = (cmd: string): string => sshRun(port, 'alice', key.privateKey, cmd);
      const sudo = (cmd: string): string => run(`echo ${Buffer.from(cmd).toString('base64')} | base64 -d > /tmp/cmd.sh && echo bob | sudo -S -p "" sh /tmp/cmd.sh`);
      /** Waits for the n-th login prompt on the serial console (one per boot), then for ssh. */
      const booted = async (n: number, what: string): Promise<void> => {
        const clock = timeBudget(`update: ${what}`);
        const deadline = Date.now() + 900_000; // TCG on a shared 2-core machine: a boot took 388 s under load
        while ((vm.serialText().match(/login:/g) ?? []).length < n) {
          if (Date.now() > deadline) throw new Error(`boot ${n} (${what}) did not reach a login prompt`);
          await new Promise((r) => setTimeout(r, 2000));
        }
        await waitForSsh(port, 'alice', key.privateKey, 180_000);
        clock();
      };
      /** Runs a command that reboots the guest: the ssh session dies with it. */
      const rebooting = (cmd: string): void => {
        try {
          sudo(`${cmd} > /var/tmp/basalt-update.log 2>&1`);
        } catch {
          // the connection closes as the guest goes down
        }
      };
      const status = (): GuestStatus => JSON.parse(sudo('basalt status --format json')) as GuestStatus;

      await booted(1, 'boot v1');
      assert.equal(status().status.booted?.image.imageDigest, d1);
      assert.equal(run(`cat ${VERSION_FILE}`).trim(), 'v1');
      const check = JSON.parse(sudo('basalt upgrade --check --tls-verify=false --json')) as { available: boolean; manifestDigest: string };
      assert.deepEqual([check.available, check.manifestDigest], [true, d2]);

      const upgradeTime = timeBudget('update: basalt upgrade --apply (download, import, deploy, ESP) until the guest goes down');
      rebooting('basalt upgrade --apply --tls-verify=false');
      upgradeTime();
      await booted(2, 'reboot into v2');
      console.log(sudo('cat /var/tmp/basalt-update.log'));
      assert.equal(run(`cat ${VERSION_FILE}`).trim(), 'v2');
      let s = status();
      assert.equal(s.status.booted?.image.imageDigest, d2);
      assert.equal(s.status.rollback?.image.imageDigest, d1);
      // `basalt kargs` lists the arguments carried to the next deployment: not ostree= or basalt.deployment=.
      assert.equal(sudo('basalt kargs').trim(), `${run('cat /proc/cmdline').trim().split(/\s+/).filter((a) => !/^(ostree|basalt\.deployment|initrd|BOOT_IMAGE)=/.test(a)).join(' ')}`);

      rebooting('basalt rollback --apply');
      await booted(3, 'rollback into v1');
      assert.equal(run(`cat ${VERSION_FILE}`).trim(), 'v1');
      s = status();
      assert.equal(s.status.booted?.image.imageDigest, d1);
      assert.equal(s.status.rollback?.image.imageDigest, d2);

      // Staged: no --apply. The deployment waits for shutdown; /etc changed afterwards is merged then.
      const staged = JSON.parse(sudo('basalt upgrade --tls-verify=false --json')) as { staged: boolean; changed: boolean; import: { imported: number } };
      assert.deepEqual([staged.changed, staged.staged], [true, true]);
      assert.equal(staged.import.imported, 0, 'v2 layers are already in the repository');
      s = status();
      assert.equal(s.status.staged?.image.imageDigest, d2);
      assert.equal(s.status.booted?.image.imageDigest, d1);
      sudo('echo after-staging > /etc/basalt-after-staging');
      rebooting('systemctl reboot');
      await booted(4, 'reboot with a staged v2 (finalised and mirrored at shutdown)');
      assert.equal(run(`cat ${VERSION_FILE}`).trim(), 'v2');
      assert.equal(status().status.booted?.image.imageDigest, d2);
      assert.equal(run('cat /etc/basalt-after-staging').trim(), 'after-staging', 'an /etc change made after staging is in the new deployment');
      const entries = sudo('bootctl list 2>/dev/null');
      assert.equal((entries.match(/id: basalt-default-[0-9a-f]{12}\.\d+\.conf/g) ?? []).length, 2, entries);
      assert.match(sudo('systemctl is-active basalt-esp-mirror.service'), /^active/m);
      assert.match(sudo('systemctl show -p Result --value basalt-esp-reconcile.service'), /^success/m);
      console.log(sudo('journalctl -b -1 -u basalt-esp-mirror.service -u basalt-esp-reconcile.service -u ostree-finalize-staged.service --no-pager -o cat 2>&1 | tail -n 20; true'));
    });
  } finally {
    await registry.stop();
  }
});
