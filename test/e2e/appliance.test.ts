import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basaltOk } from '../harness/cli.js';
import { baseImage } from '../harness/base-image.js';
import { startRegistry } from '../harness/registry.js';
import { freePort, sshKeyPair, sshRun, timeBudget, waitForSsh, withVm } from '../harness/vm.js';
import { SHARED, tempDir } from '../harness/tools.js';
import { guestListingCommand, listingDifferences, parseGuestListing, podmanExportListing, type TreeListing } from '../harness/tree-listing.js';

/**
 * `podman export` of the image as the deployment should hold it: /etc moves to /usr/etc
 * (ostree's layout; the live /etc is made from it), /var is left out (the shared /var, seeded
 * from the image once at install), device nodes and FIFOs are dropped (ostree stores neither).
 */
function asDeployed(exported: TreeListing): TreeListing {
  const out: TreeListing = new Map();
  for (const [path, line] of exported) {
    if (path === 'var' || path.startsWith('var/') || /^[cbp] /.test(line)) continue;
    out.set(path === 'etc' || path.startsWith('etc/') ? `usr/${path}` : path, line);
  }
  return out;
}

/**
 * The deployment as listed in the guest, without its live /etc (made from /usr/etc), /var,
 * and what the running system put in /tmp (on Debian /tmp is the deployment's own directory).
 */
function imagePartOf(deployed: TreeListing): TreeListing {
  const out: TreeListing = new Map();
  for (const [path, line] of deployed) {
    const top = path.split('/')[0];
    if (top === 'etc' || top === 'var' || path.startsWith('tmp/')) continue;
    out.set(path, line);
  }
  return out;
}

/**
 * Issue 3's acceptance run: the example appliance's Containerfile on basalt's base, pushed to
 * a loopback registry, made into a qcow2 disk with its config.toml, booted through OVMF and
 * systemd-boot; the LAMP page answers on a forwarded port.
 */
test('example appliance: build → push → disk --type qcow2 --config → boots and serves "Welcome to My Appliance" with "php ok"', { timeout: 40 * 60_000 }, async () => {
  const prepared = timeBudget('appliance: base (cached) + build + push + disk');
  const work = await tempDir('appliance');
  const env = { BASALT_STORE: join(work, 'store') };
  basaltOk(['image', 'copy', await baseImage(), 'localhost/basalt/debian:bookworm'], { env });
  const appliance = join(SHARED, 'examples/appliance');
  basaltOk(['build', '-f', join(appliance, 'Containerfile'), '-t', 'localhost/appliance/lamp:v1', '--build-arg', 'BASE=localhost/basalt/debian:bookworm', appliance], { env });
  const registry = await startRegistry({ flavour: 'open' });
  try {
    const ref = `docker://${registry.host}/appliance/lamp:latest`;
    basaltOk(['image', 'copy', '--dest-tls-verify=false', 'localhost/appliance/lamp:v1', ref], { env });
    // The example's config.toml, with a key this test holds instead of its placeholder.
    const key = await sshKeyPair();
    const example = await import('node:fs/promises').then((fs) => fs.readFile(join(appliance, 'config.toml'), 'utf8'));
    const config = join(work, 'config.toml');
    await writeFile(config, example.replace(/^key = ".*"$/m, `key = "${key.publicLine}"`));
    const out = join(work, 'out');
    basaltOk(['disk', ref, '--tls-verify=false', '--type', 'qcow2', '--config', config, '-o', out], { env });
    const digest = basaltOk(['image', 'digest', '--tls-verify=false', ref], { env }).trim();
    prepared();
    const [http, ssh] = [await freePort(), await freePort()];
    await withVm('appliance: power-on to checks done', { drives: [join(out, 'disk.qcow2')], snapshot: true, memoryMiB: 2048, cpus: 2, portForwards: [{ host: http, guest: 80 }, { host: ssh, guest: 22 }] }, async (vm) => {
      await vm.waitForSerial(/login:/, 300_000);
      await waitForSsh(ssh, 'alice', key.privateKey, 120_000);
      const run = (cmd: string): string => sshRun(ssh, 'alice', key.privateKey, cmd);
      let page = '';
      for (let i = 0; i < 30 && !/php ok/.test(page); i++) {
        page = await fetch(`http://127.0.0.1:${http}/`).then((r) => r.text(), () => '');
        if (!/php ok/.test(page)) await new Promise((r) => setTimeout(r, 3000));
      }
      assert.match(page, /Welcome to My Appliance/);
      assert.match(page, /php ok/);
      assert.match(run('id'), /\(sudo\)/);
      const cmdline = run('cat /proc/cmdline');
      assert.match(cmdline, /console=ttyS0/);
      // The base image's /usr/lib/bootc/kargs.d/10-basalt-console.toml, inherited by the appliance.
      assert.match(cmdline, /console=tty0 console=ttyS0,115200n8/);
      const sudo = (cmd: string): string => run(`echo ${Buffer.from(cmd).toString('base64')} | base64 -d > /tmp/cmd.sh && echo bob | sudo -S -p "" sh /tmp/cmd.sh`);
      // The ESP is mounted (fstab line written at install) and bootctl names basalt's entry.
      assert.match(sudo('findmnt -n -o FSTYPE /boot/efi'), /vfat/);
      const entries = sudo('bootctl list 2>/dev/null');
      assert.match(entries, /id: basalt-default-[0-9a-f]{12}\.0\.conf/);
      assert.match(entries, /title: .*\(selected\)/);
      assert.match(sudo('touch /etc/appliance-test && touch /var/tmp/appliance-test && echo writable'), /writable/);
      assert.match(run('touch /usr/x 2>&1 || echo refused'), /refused|Read-only/);
      const status = JSON.parse(run('echo bob | sudo -S -p "" basalt status --format json')) as { status: { booted: { image: { imageDigest: string } } } };
      assert.equal(status.status.booted.image.imageDigest, digest);
      // The deployed tree equals `podman export` of the image podman built (type, mode, owner,
      // size, sha256, link target), apart from the documented /etc move, /var and device nodes.
      const listTime = timeBudget('appliance: list and hash the deployed tree in the guest');
      const deployed = imagePartOf(parseGuestListing(sudo(guestListingCommand('$(ls -d /sysroot/ostree/deploy/default/deploy/*.0)'))));
      listTime();
      const expected = asDeployed(await podmanExportListing('localhost/appliance/lamp:v1'));
      assert.ok(expected.size > 10_000, `podman export listed only ${expected.size} paths`);
      assert.deepEqual(listingDifferences(expected, deployed), []);
    });
  } finally {
    await registry.stop();
  }
});
