import { readFile } from 'node:fs/promises';
import { META } from './import.js';
import { parseGVariantString } from './gvariant-text.js';
import { metadataKey } from './ostree-tool.js';
import { originImage, parseKeyFile, type ImageSpec } from './origin.js';
import { listDeployments, repoOf, type Deployment } from './sysroot.js';
import { espEntryStates, type EspEntryStatus } from './bootcount.js';
import { ENTRIES_DIR, ENTRY_PREFIX, entryId } from './bootentries.js';
import { directoryEsp } from './esp-target.js';
import { bootedDeployment, originPath, requireOstreeSystem, stagedDeployment, type DeploymentId } from './host.js';

/** Where a booted basalt system mounts its ESP (install writes the fstab line). */
export const ESP_MOUNT = '/boot/efi';

/**
 * The host as bootc's `bootc status --format json` describes it (apiVersion/kind/spec/status),
 * under basalt's own apiVersion. Read from a booted system (/run/ostree-booted, sysroot /) or
 * from a sysroot directory.
 *
 * From a directory nothing is booted: `status.booted` is null and the deployment that would
 * boot next (ostree's default, first in its list) is reported as `status.default`; `rollback`
 * is the next one. On a booted system `default` is also given (it differs from `booted` after a
 * deploy that has not been booted yet), and rollback is the first deployment that is neither
 * booted nor staged, as in bootc.
 */
export interface HostImageStatus {
  image: ImageSpec;
  version: string | null;
  timestamp: string | null;
  imageDigest: string | null;
  architecture?: string;
}

export interface HostDeploymentStatus {
  image: HostImageStatus | null;
  pinned: boolean;
  ostree: { checksum: string; deploySerial: number; stateroot: string };
  /** basalt's stable boot entry id on the ESP. */
  entryId: string;
  /**
   * The deployment's entry on the ESP as systemd-boot's boot counting left it: `good` (no
   * counter: blessed, or counting off), `trying` (tries left), `bad` (out of tries: sorted last,
   * booted only when nothing else is left). null when the ESP was not read or has no entry.
   */
  bootEntry: EspEntryStatus | null;
}

export interface BasaltHost {
  apiVersion: 'org.basalt/v1';
  kind: 'BasaltHost';
  metadata: { name: 'host' };
  spec: { image: ImageSpec | null; bootOrder: 'default' | 'rollback' };
  status: {
    staged: HostDeploymentStatus | null;
    booted: HostDeploymentStatus | null;
    rollback: HostDeploymentStatus | null;
    default: HostDeploymentStatus | null;
    /** Whether this was read from the running system (false: from a sysroot directory). */
    isBooted: boolean;
    type: 'basaltHost' | null;
  };
}

export interface StatusOptions {
  /** A sysroot directory; default: the booted system (/). */
  sysroot?: string;
  /** The ESP, for boot counting states (default: /boot/efi on a booted system, none otherwise). */
  espDir?: string;
}

async function meta(repo: string, checksum: string, key: string): Promise<string | null> {
  const v = await metadataKey(repo, checksum, key);
  return v === undefined ? null : parseGVariantString(v);
}

async function describe(sysroot: string, d: Pick<Deployment, 'stateroot' | 'checksum' | 'deploySerial'>, esp: Map<string, EspEntryStatus>): Promise<HostDeploymentStatus> {
  const repo = repoOf(sysroot);
  const origin = parseKeyFile(await readFile(originPath(sysroot, d), 'utf8').catch(() => ''));
  const spec = originImage(origin);
  const image: HostImageStatus | null = spec
    ? { image: spec, version: await meta(repo, d.checksum, META.version), timestamp: await meta(repo, d.checksum, META.created), imageDigest: await meta(repo, d.checksum, META.manifestDigest) }
    : null;
  return {
    image,
    pinned: origin.get('libostree-transient')?.get('pinned') === 'true',
    ostree: { checksum: d.checksum, deploySerial: d.deploySerial, stateroot: d.stateroot },
    entryId: entryId(d),
    bootEntry: esp.get(`${ENTRY_PREFIX}${entryId(d)}`) ?? null,
  };
}

export async function readHostStatus(options: StatusOptions = {}): Promise<BasaltHost> {
  const isBooted = options.sysroot === undefined;
  const sysroot = options.sysroot ?? '/';
  await requireOstreeSystem(sysroot, isBooted);
  const deployments = await listDeployments(sysroot);
  const booted = isBooted ? await bootedDeployment(sysroot, deployments) : undefined;
  const staged = isBooted ? await stagedDeployment() : undefined;
  const first = deployments[0];
  const rollback = isBooted ? deployments.find((d) => d !== booted) : deployments[1];
  const espDir = options.espDir ?? (isBooted ? ESP_MOUNT : undefined);
  const esp = espDir === undefined ? new Map<string, EspEntryStatus>() : await espEntryStates(directoryEsp(espDir), ENTRIES_DIR, ENTRY_PREFIX);
  const describeOrNull = async (d: DeploymentId | undefined): Promise<HostDeploymentStatus | null> => (d ? describe(sysroot, d, esp) : null);
  const status = {
    staged: await describeOrNull(staged),
    booted: await describeOrNull(booted),
    rollback: await describeOrNull(rollback),
    default: await describeOrNull(first),
    isBooted,
    type: deployments.length > 0 ? ('basaltHost' as const) : null,
  };
  const specSource = status.staged ?? status.booted ?? status.default;
  return {
    apiVersion: 'org.basalt/v1',
    kind: 'BasaltHost',
    metadata: { name: 'host' },
    spec: { image: specSource?.image?.image ?? null, bootOrder: booted && rollback && first === rollback ? 'rollback' : 'default' },
    status,
  };
}

const BOOT_STATE_TEXT: Record<EspEntryStatus['state'], string> = {
  good: 'good',
  trying: 'on trial: not yet marked good',
  bad: 'BAD: out of boot tries, booted only as a last resort',
};

/** `bootc status` style text. */
export function formatHostHuman(host: BasaltHost): string {
  const lines: string[] = [];
  const show = (mark: string, label: string, d: HostDeploymentStatus | null): void => {
    if (!d) return;
    const img = d.image;
    const name = img ? (img.image.transport === 'registry' ? img.image.image : `${img.image.transport}:${img.image.image}`) : '(not from an image)';
    lines.push(`${mark} ${label}: ${name}`);
    if (img?.imageDigest) lines.push(`        Digest: ${img.imageDigest}`);
    if (img?.version || img?.timestamp) lines.push(`       Version: ${img.version ?? '-'}${img.timestamp ? ` (${img.timestamp})` : ''}`);
    lines.push(`    Deployment: ${d.ostree.stateroot} ${d.ostree.checksum}.${d.ostree.deploySerial}${d.pinned ? ' (pinned)' : ''}`);
    if (d.bootEntry) lines.push(`    Boot entry: ${d.bootEntry.file} (${BOOT_STATE_TEXT[d.bootEntry.state]})`);
    lines.push('');
  };
  const s = host.status;
  if (!s.isBooted) lines.push('Not booted: reading a sysroot directory.', '');
  show('●', 'Staged image', s.staged);
  show('●', 'Booted image', s.booted);
  if (!s.isBooted || (s.default && s.default !== s.booted && s.default.ostree.checksum !== s.booted?.ostree.checksum)) show('●', 'Default image', s.default);
  show('↺', 'Rollback image', s.rollback);
  if (lines.length === 0 || (lines.length === 2 && !s.isBooted)) lines.push('No deployments.');
  return `${lines.join('\n').trimEnd()}\n`;
}
