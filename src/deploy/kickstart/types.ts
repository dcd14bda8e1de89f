/** The kickstart subset basalt implements, after parsing and validation. */

export type OstreeTransport = 'registry' | 'oci' | 'oci-archive';
export type FinishAction = 'reboot' | 'poweroff' | 'halt';

export interface OstreeContainer {
  url: string;
  transport: OstreeTransport;
  stateroot: string;
  /** False with --no-signature-verification. */
  verifySignatures: boolean;
}

export interface ClearPart {
  all: boolean;
  initlabel: boolean;
  disklabel: 'gpt' | 'msdos';
  /** clearpart --drives: only these disks may be cleared. */
  drives?: string[];
}

export interface Partition {
  mountpoint: '/' | '/boot/efi' | '/boot';
  /** --size, in MiB. */
  sizeMiB?: number;
  grow: boolean;
  fstype: 'ext4' | 'xfs' | 'efi';
  ondisk?: string;
  line: number;
}

export interface KsUser {
  name: string;
  groups: string[];
  password?: string;
  /** --iscrypted: `password` is a crypt(3) hash. */
  crypted: boolean;
  line: number;
}

export interface RootPassword {
  password?: string;
  crypted: boolean;
  lock: boolean;
}

export interface SshKey {
  username: string;
  key: string;
  line: number;
}

export interface NetworkDevice {
  /** Interface name, MAC address, or `link` (any wired interface); absent: any wired interface. */
  device?: string;
  dhcp: boolean;
  activate: boolean;
}

export interface Script {
  kind: 'pre' | 'post';
  interpreter: string;
  /** %post --nochroot: runs in the installer with the target at /mnt/sysimage. */
  nochroot: boolean;
  errorOnFail: boolean;
  body: string;
  line: number;
}

export interface KsWarning {
  line: number;
  message: string;
}

export interface Kickstart {
  source: string;
  ostreecontainer: OstreeContainer;
  clearpart?: ClearPart;
  /** ignoredisk --only-use. */
  onlyUse?: string[];
  reqpartAddBoot?: boolean;
  parts: Partition[];
  users: KsUser[];
  rootpw?: RootPassword;
  sshkeys: SshKey[];
  networks: NetworkDevice[];
  hostname?: string;
  services: { enabled: string[]; disabled: string[] };
  timezone?: { zone: string; utc: boolean };
  lang?: string;
  keyboard?: { keymap?: string; xlayouts: string[] };
  /** bootloader --append, split into arguments. */
  kargs: string[];
  scripts: Script[];
  finish?: FinishAction;
  /** Accepted directives and options that have no effect (printed by the CLI). */
  warnings: KsWarning[];
}
