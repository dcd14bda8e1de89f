import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parsePortForward, qemuArgs } from '../../src/media/qemu-args.js';
import { startVm } from '../../src/media/vm.js';
import { detectImageFormat } from '../../src/media/disk-format.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { withTempDir } from '../harness/tools.js';

test('--port-forward parses HOST:GUEST and ADDR:HOST:GUEST, refuses the rest', () => {
  assert.deepEqual(parsePortForward('8022:22'), { host: 8022, guest: 22 });
  assert.deepEqual(parsePortForward('0.0.0.0:8080:80'), { host: 8080, guest: 80, hostAddress: '0.0.0.0' });
  for (const bad of ['22', 'a:b', '70000:22', '8022:0']) assert.throws(() => parsePortForward(bad), (e) => isBasaltError(e, 'usage') && e.message.includes(bad));
});

test('QEMU command line: pflash firmware with a private vars copy, drives in boot order, hostfwd, QMP', () => {
  const args = qemuArgs({
    accel: 'tcg',
    firmware: { kind: 'uefi', ovmf: { code: '/fw/CODE.fd', vars: '/fw/VARS.fd' }, vars: '/run/VARS.fd' },
    memoryMiB: 1024,
    cpus: 2,
    drives: [{ path: '/d/install.iso', format: 'iso' }, { path: '/d/disk,1.qcow2', format: 'qcow2' }],
    portForwards: [{ host: 8022, guest: 22 }],
    serial: 'pipe',
    qmpSocket: '/run/qmp.sock',
    snapshot: true,
  });
  const line = args.join(' ');
  assert.match(line, /-accel tcg -machine q35 -m 1024 -smp 2/);
  assert.match(line, /if=pflash,format=raw,readonly=on,file=\/fw\/CODE\.fd/);
  assert.match(line, /if=pflash,format=raw,file=\/run\/VARS\.fd/);
  assert.match(line, /media=cdrom.*ide-cd,drive=drive0,bootindex=0/);
  assert.match(line, /format=qcow2,file=\/d\/disk,,1\.qcow2,snapshot=on -device virtio-blk-pci,drive=drive1,bootindex=1/);
  assert.match(line, /hostfwd=tcp:127\.0\.0\.1:8022-:22/);
  assert.match(line, /-serial stdio -qmp unix:\/run\/qmp\.sock,server=on,wait=off/);
  assert.doesNotMatch(line, /-kernel/);
  const bios = qemuArgs({ accel: 'kvm', firmware: { kind: 'bios' }, memoryMiB: 512, cpus: 1, drives: [{ path: 'x.raw', format: 'raw' }], portForwards: [], serial: 'terminal', qmpSocket: 'q', snapshot: false });
  assert.ok(!bios.join(' ').includes('pflash'));
  assert.ok(bios.includes('host'), 'KVM uses -cpu host');
  assert.ok(bios.includes('mon:stdio'));
  assert.doesNotMatch(line, /restrict/, 'the guest has a network unless asked otherwise');
  const offline = qemuArgs({ accel: 'tcg', firmware: { kind: 'bios' }, memoryMiB: 512, cpus: 1, drives: [{ path: 'x.raw', format: 'raw' }], portForwards: [{ host: 8022, guest: 22 }], serial: 'pipe', qmpSocket: 'q', snapshot: false, restrictNetwork: true });
  assert.ok(offline.includes('user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:8022-:22'), offline.join(' '));
});

test('disk formats are detected from their content', async () => {
  await withTempDir('detect', async (dir) => {
    const raw = join(dir, 'x.qcow2'); // the name lies: content decides
    await writeFile(raw, Buffer.alloc(40 * 1024));
    assert.equal(await detectImageFormat(raw), 'raw');
    const iso = Buffer.alloc(40 * 1024);
    iso.write('\x01CD001', 16 * 2048, 'latin1');
    await writeFile(join(dir, 'i'), iso);
    assert.equal(await detectImageFormat(join(dir, 'i')), 'iso');
  });
});

test('a missing QEMU is a tool error naming the package to install', async () => {
  await withTempDir('noqemu', async (dir) => {
    const disk = join(dir, 'd.raw');
    await writeFile(disk, Buffer.alloc(1024 * 1024));
    const path = process.env.PATH;
    process.env.PATH = dir; // nothing to run here
    try {
      await assert.rejects(startVm({ drives: [disk], accel: 'tcg', firmware: 'bios' }), (e) => isBasaltError(e, 'tool') && /qemu-system-x86_64 is not installed/.test(e.message) && /qemu-system-x86/.test(e.hint ?? ''));
    } finally {
      process.env.PATH = path;
    }
  });
});
