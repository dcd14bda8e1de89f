import { Command, InvalidArgumentError, Option } from 'commander';
import { BasaltError } from '../oci/errors.js';
import { startVm, type VmOptions } from '../media/vm.js';
import { parsePortForward, type PortForward } from '../media/qemu-args.js';
import { parseByteSize } from '../media/sizes.js';
import { collect } from './common.js';

type Opts = Record<string, unknown>;

/** "2048" (MiB, as QEMU reads -m) or a size with a unit ("4G", "512 MiB"). */
function memoryMiB(text: string): number {
  const bytes = /^\d+$/.test(text.trim()) ? Number(text) * 1024 * 1024 : parseByteSize(text, '--memory');
  const mib = Math.floor(bytes / (1024 * 1024));
  if (mib < 64) throw new InvalidArgumentError(`${text} is less than the 64 MiB a VM needs`);
  return mib;
}

function positiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive whole number, got "${text}"`);
  return n;
}

export function vmCommand(): Command {
  const vm = new Command('vm')
    .description('boot a disk image (raw, qcow2, vmdk) or an ISO under QEMU: UEFI (OVMF + private variable store) by default, KVM where it works, TCG otherwise')
    .argument('<image>', 'the disk or ISO to boot first')
    .argument('[more...]', 'further disks or ISOs, attached in this order (e.g. the target disk of an installer ISO)')
    .option('--uefi', 'boot through UEFI firmware (OVMF; the default)')
    .option('--bios', 'boot through legacy BIOS (SeaBIOS)')
    .option('--memory <size>', 'guest memory: MiB, or a size such as 4G', memoryMiB, 2048)
    .option('--cpus <n>', 'virtual CPUs', positiveInt, 2)
    .option('--port-forward <host:guest>', 'forward a TCP port from host loopback to the guest (repeatable), e.g. 8022:22', collect, [])
    .option('--console', 'put the serial console on this terminal (Ctrl-A X quits QEMU)')
    .option('--serial-log <file>', 'without --console: write the serial console here (default: a file in a temp dir, printed at start)')
    .option('--snapshot', 'discard every write to the disks when the VM ends')
    .addOption(new Option('--accel <accel>', 'CPU acceleration (or set BASALT_VM_ACCEL)').choices(['auto', 'kvm', 'tcg']).default('auto'));
  vm.addHelpText(
    'after',
    `
Needs qemu-system-x86 (and ovmf for UEFI). Without --console, basalt waits for the VM to
power off; interrupting basalt stops QEMU. The guest's network is QEMU user networking;
--port-forward 8022:22 makes the guest's ssh reachable as 127.0.0.1:8022.`,
  );
  vm.action(async (image: string, more: string[], o: Opts) => {
    if (o.uefi && o.bios) throw new BasaltError('usage', '--uefi and --bios exclude each other');
    const forwards: PortForward[] = (o.portForward as string[]).map(parsePortForward);
    const options: VmOptions = {
      drives: [image, ...more],
      firmware: o.bios ? 'bios' : 'uefi',
      memoryMiB: o.memory as number,
      cpus: o.cpus as number,
      portForwards: forwards,
      console: Boolean(o.console),
      snapshot: Boolean(o.snapshot),
      accel: o.accel as 'auto' | 'kvm' | 'tcg',
      ...(typeof o.serialLog === 'string' ? { serialLog: o.serialLog } : {}),
    };
    const handle = await startVm(options);
    if (handle.serialLog) process.stderr.write(`basalt: QEMU pid ${handle.pid} (${handle.accel}); serial console log: ${handle.serialLog}\n`);
    for (const f of forwards) process.stderr.write(`basalt: port ${f.hostAddress ?? '127.0.0.1'}:${f.host} → guest ${f.guest}\n`);
    // A TERM (from a script or a service manager) powers the guest down and ends QEMU by its
    // PID; Ctrl-C reaches QEMU itself through the terminal's process group.
    process.once('SIGTERM', () => {
      void handle.shutdown(20_000).finally(() => process.exit(143));
    });
    const code = await handle.exited;
    if (code !== 0) throw new BasaltError('tool', `QEMU exited with ${code === null ? 'a signal' : `code ${code}`}`, { hint: handle.serialLog ? `see ${handle.serialLog}` : undefined });
  });
  return vm;
}
