/**
 * The qemu-system-x86_64 command line for a VM, as a pure function of its options, so the
 * exact arguments can be tested and printed (`basalt vm --dry-run`).
 */
import { BasaltError } from '../oci/errors.js';
import type { Accel } from './accel.js';
import type { ImageFormat } from './disk-format.js';
import type { OvmfFiles } from './firmware.js';

export interface PortForward {
  host: number;
  guest: number;
  /** Host address to listen on; loopback unless given. */
  hostAddress?: string;
}

export interface VmDrive {
  path: string;
  format: ImageFormat;
}

export interface QemuArgsInput {
  accel: Accel;
  firmware: { kind: 'uefi'; ovmf: OvmfFiles; vars: string } | { kind: 'bios' };
  memoryMiB: number;
  cpus: number;
  drives: readonly VmDrive[];
  portForwards: readonly PortForward[];
  /** 'terminal': serial and monitor multiplexed on the inherited terminal; 'pipe': serial on stdin/stdout. */
  serial: 'terminal' | 'pipe';
  qmpSocket: string;
  snapshot: boolean;
  /** QEMU's user network with restrict=on: the guest reaches nothing outside; port forwards still work. */
  restrictNetwork?: boolean;
  extraArgs?: readonly string[];
}

/** "8022:22" or "127.0.0.1:8080:80" → a PortForward; throws 'usage' naming the text. */
export function parsePortForward(text: string): PortForward {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d+):(\d+)$/.exec(text);
  const host = m ? Number(m[2]) : NaN;
  const guest = m ? Number(m[3]) : NaN;
  if (!m || !(host > 0 && host < 65536) || !(guest > 0 && guest < 65536))
    throw new BasaltError('usage', `--port-forward "${text}" is not HOST:GUEST`, { hint: 'write e.g. 8022:22 (host port 8022 to guest port 22)' });
  return m[1] ? { host, guest, hostAddress: m[1] } : { host, guest };
}

export function qemuArgs(input: QemuArgsInput): string[] {
  if (input.drives.length === 0) throw new BasaltError('usage', 'a VM needs at least one disk or ISO');
  const args = ['-accel', input.accel, '-machine', 'q35', '-m', String(input.memoryMiB), '-smp', String(input.cpus), '-nodefaults', '-display', 'none', '-vga', 'none'];
  if (input.accel === 'kvm') args.push('-cpu', 'host');
  if (input.firmware.kind === 'uefi') {
    args.push('-drive', `if=pflash,format=raw,readonly=on,file=${input.firmware.ovmf.code}`, '-drive', `if=pflash,format=raw,file=${input.firmware.vars}`);
  }
  // Drives boot in the order given; an ISO becomes a CD-ROM on the q35 AHCI controller.
  input.drives.forEach((drive, i) => {
    const file = drive.path.replace(/,/g, ',,'); // QEMU's option syntax escapes commas by doubling
    if (drive.format === 'iso') {
      args.push('-drive', `if=none,id=drive${i},media=cdrom,readonly=on,format=raw,file=${file}`, '-device', `ide-cd,drive=drive${i},bootindex=${i}`);
    } else {
      args.push('-drive', `if=none,id=drive${i},format=${drive.format},file=${file}${input.snapshot ? ',snapshot=on' : ''}`, '-device', `virtio-blk-pci,drive=drive${i},bootindex=${i}`);
    }
  });
  const forwards = input.portForwards.map((p) => `,hostfwd=tcp:${p.hostAddress ?? '127.0.0.1'}:${p.host}-:${p.guest}`).join('');
  args.push('-netdev', `user,id=net0${input.restrictNetwork ? ',restrict=on' : ''}${forwards}`, '-device', 'virtio-net-pci,netdev=net0');
  args.push('-device', 'virtio-rng-pci'); // guests block on entropy at boot without it (sshd key generation)
  args.push('-serial', input.serial === 'terminal' ? 'mon:stdio' : 'stdio');
  args.push('-qmp', `unix:${input.qmpSocket},server=on,wait=off`);
  args.push(...(input.extraArgs ?? []));
  return args;
}
