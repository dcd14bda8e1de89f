/**
 * Tiny initramfs images for boot tests: a "newc" cpio archive (what the kernel unpacks)
 * written here so tests need no cpio or shell pipeline, holding a static busybox as the
 * shell and a /init script.
 */
import { readFile } from 'node:fs/promises';

interface CpioEntry {
  name: string;
  mode: number; // including the file type bits
  data?: Buffer;
  rdevMajor?: number;
  rdevMinor?: number;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function newcRecord(entry: CpioEntry, ino: number): Buffer {
  const data = entry.data ?? Buffer.alloc(0);
  const name = Buffer.from(`${entry.name}\0`, 'utf8');
  const fields = [ino, entry.mode, 0, 0, 1, 0, data.length, 0, 0, entry.rdevMajor ?? 0, entry.rdevMinor ?? 0, name.length, 0];
  const header = Buffer.from(`070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`, 'latin1');
  const headerAndName = Buffer.concat([header, name]);
  return Buffer.concat([headerAndName, Buffer.alloc(pad4(headerAndName.length)), data, Buffer.alloc(pad4(data.length))]);
}

export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const records = entries.map((e, i) => newcRecord(e, i + 1));
  records.push(newcRecord({ name: 'TRAILER!!!', mode: 0 }, 0));
  return Buffer.concat(records);
}

/**
 * An initramfs whose /init prints `marker` on the console and powers the machine off.
 * Needs busybox-static (/bin/busybox).
 */
export async function markerInitramfs(marker: string, busyboxPath = '/bin/busybox'): Promise<Buffer> {
  const busybox = await readFile(busyboxPath);
  const init = [
    '#!/bin/busybox sh',
    '/bin/busybox mkdir -p /proc /sys',
    '/bin/busybox mount -t proc proc /proc',
    `/bin/busybox echo "${marker}"`,
    // printf, not echo: the command line holds backslashes (initrd=\\initrd.img) echo would eat.
    '/bin/busybox printf "cmdline: %s\\n" "$(/bin/busybox cat /proc/cmdline)"',
    // Give the UART time to drain: poweroff -f cuts power at once.
    '/bin/busybox sleep 2',
    '/bin/busybox poweroff -f',
    '',
  ].join('\n');
  return cpioNewc([
    { name: 'bin', mode: S_IFDIR | 0o755 },
    { name: 'bin/busybox', mode: S_IFREG | 0o755, data: busybox },
    { name: 'dev', mode: S_IFDIR | 0o755 },
    // The kernel opens /dev/console for init before anything could mount devtmpfs.
    { name: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 },
    { name: 'init', mode: S_IFREG | 0o755, data: Buffer.from(init) },
  ]);
}
