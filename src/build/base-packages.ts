/**
 * What a bootable Debian base contains. mmdebstrap installs no Recommends, so ostree-boot
 * brings no grub, shim or mail server.
 */
export const BASE_PACKAGES: readonly string[] = [
  'linux-image-amd64',
  'systemd',
  'systemd-sysv',
  'systemd-resolved',
  'systemd-boot', // bootctl, systemd-bless-boot and its generator (boot counting)
  'udev',
  'dbus',
  'dracut',
  'ostree',
  'ostree-boot', // dracut's ostree module: ostree-prepare-root in the initramfs
  'openssh-server',
  'ca-certificates',
  'sudo',
  'nodejs', // basalt, the device agent, runs on Debian's own Node.js
  'iproute2',
  'attr', // getfattr/setfattr: basalt reads and writes xattrs through them
];

export const DEFAULT_SUITE = 'bookworm';
export const DEFAULT_BASE_NAME = 'localhost/basalt/debian:bookworm';
