import { readFile, stat } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { BasaltError } from '../oci/errors.js';
import { writeStreamAtomic } from '../oci/fsutil.js';
import { DEFAULT_GZIP_LEVEL } from '../oci/layer/compression.js';
import { readTar, TarWriter } from '../oci/layer/tar.js';
import { goClean, openAciTar, readAci } from './archive.js';
import { RuleError, checkAcIdentifier, checkAcName } from './identifiers.js';
import { checkIsolators } from './isolators.js';
import { parseImageManifest, serializeManifest, type AciIsolator, type AciMountPoint, type AciPort, type ImageManifest } from './manifest.js';

/** actool patch-manifest's edits, with its flag syntax. */
export interface ManifestPatch {
  name?: string;
  exec?: string;
  user?: string;
  group?: string;
  capability?: string;
  revokeCapability?: string;
  mounts?: string;
  ports?: string;
  supplementaryGroups?: string;
  isolators?: string;
  seccompMode?: string;
  seccompSet?: string;
}

function usage(rule: string): BasaltError {
  return new BasaltError('usage', `patch-manifest: ${rule}`);
}

/** `name,key=value,...` (values URL-unescaped as actool's query-string parsing does). */
function keyValues(s: string, what: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [i, part] of `name=${s}`.split(',').entries()) {
    const eq = part.indexOf('=');
    if (eq < 0) throw usage(`${what} "${s}" has a parameter without a value: ${part}`);
    const key = part.slice(0, eq);
    if (out.has(key)) throw usage(`${what} "${s}" gives ${key} twice`);
    out.set(key, i === 0 ? part.slice(eq + 1) : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, ' ')));
  }
  return out;
}

function bool(v: string, what: string): boolean {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(v)) return false;
  throw usage(`${what}: "${v}" is not a boolean`);
}

function rule<T>(fn: () => T, what: string): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof RuleError) throw usage(`${what}: ${e.rule}`);
    throw e;
  }
}

function replaceIsolators(list: AciIsolator[], names: string[], add: AciIsolator): AciIsolator[] {
  return [...list.filter((i) => !names.includes(i.name)), add];
}

/** Applies the edits to a manifest, as actool patch-manifest does; the result is validated. */
export function patchManifest(input: ImageManifest, p: ManifestPatch): ImageManifest {
  const m: ImageManifest = structuredClone(input);
  if (p.name) {
    rule(() => checkAcIdentifier(p.name as string, '--name', 'strict'), '--name');
    m.name = p.name;
  }
  if (p.exec) {
    m.app ??= { user: '', group: '' };
    m.app.exec = p.exec.split(' ');
  }
  const needsApp = [p.user, p.group, p.supplementaryGroups, p.capability, p.revokeCapability, p.mounts, p.ports, p.isolators].some((x) => x);
  if (needsApp && !m.app) throw usage('no app in the supplied manifest and no exec command provided');
  const app = m.app;
  if (!app) return m;
  if (p.user) app.user = p.user;
  if (p.group) app.group = p.group;
  if (p.supplementaryGroups)
    app.supplementaryGIDs = p.supplementaryGroups.split(',').map((g) => {
      if (!/^[+-]?\d+$/.test(g)) throw usage(`invalid supplementary group "${g}"`);
      return Number(g);
    });
  if (p.capability && p.revokeCapability) throw usage('conflicting capabilities isolators provided (--capability and --revoke-capability)');
  const caps = p.capability ?? p.revokeCapability;
  if (caps) {
    const name = p.capability ? 'os/linux/capabilities-retain-set' : 'os/linux/capabilities-remove-set';
    app.isolators = replaceIsolators(app.isolators ?? [], ['os/linux/capabilities-remove-set', 'os/linux/capabilities-retain-set'], { name, value: { set: caps.split(',') } });
  }
  if (p.mounts)
    for (const spec of p.mounts.split(':')) {
      const kv = keyValues(spec, 'mount point');
      const mp: AciMountPoint = { name: '', path: '' };
      for (const [k, v] of kv) {
        if (k === 'name') mp.name = rule(() => (checkAcName(v, 'mount point name', 'actool'), v), `mount point "${spec}"`);
        else if (k === 'path') mp.path = v;
        else if (k === 'readOnly') mp.readOnly = bool(v, `mount point "${spec}" readOnly`);
        else throw usage(`unknown mount point parameter "${k}" in "${spec}"`);
      }
      if (!mp.path) throw usage(`mount point "${spec}": path must be set`);
      (app.mountPoints ??= []).push(mp);
    }
  if (p.ports)
    for (const spec of p.ports.split(':')) {
      const kv = keyValues(spec, 'port');
      const port: AciPort = { name: '', protocol: '', port: 0, count: 0, socketActivated: false };
      for (const [k, v] of kv) {
        if (k === 'name') port.name = rule(() => (checkAcName(v, 'port name', 'actool'), v), `port "${spec}"`);
        else if (k === 'protocol') port.protocol = v;
        else if (k === 'port' || k === 'count') {
          if (!/^\d+$/.test(v) || Number(v) > 65535) throw usage(`port "${spec}": ${k} "${v}" is not a number up to 65535`);
          port[k] = Number(v);
        } else if (k === 'socketActivated') port.socketActivated = bool(v, `port "${spec}" socketActivated`);
        else throw usage(`unknown port parameter "${k}" in "${spec}"`);
      }
      if (port.port < 1) throw usage(`port "${spec}": port must be in the 1-65535 range`);
      if (port.port + (port.count ?? 0) > 65536) throw usage(`port "${spec}": the end of the port range must be in the 1-65535 range`);
      (app.ports ??= []).push(port);
    }
  if (p.seccompMode) {
    let mode = '';
    let errno = '';
    for (const a of p.seccompMode.split(',')) {
      const kv = a.split('=');
      if (kv.length === 1) mode = kv[0] as string;
      else if (kv.length === 2 && kv[0] === 'errno') errno = kv[1] as string;
      else throw usage(`invalid --seccomp-mode argument "${a}"`);
    }
    if (mode !== 'remove' && mode !== 'retain') throw usage(`unknown seccomp mode "${mode}" (remove or retain)`);
    const value: Record<string, unknown> = { set: (p.seccompSet ?? '').split(',') };
    value.errno = errno;
    app.isolators = replaceIsolators(app.isolators ?? [], ['os/linux/seccomp-remove-set', 'os/linux/seccomp-retain-set'], { name: `os/linux/seccomp-${mode}-set`, value });
  } else if (p.seccompSet) throw usage('--seccomp-set given without --seccomp-mode');
  if (p.isolators)
    for (const spec of p.isolators.split(':')) {
      const parts = spec.split(',');
      const name = parts[0] as string;
      let value: unknown;
      if (name === 'os/linux/no-new-privileges' || name === 'os/linux/oom-score-adj') {
        if (parts.length !== 2) throw usage(`isolator ${name}: write it as ${name},VALUE`);
        try {
          value = JSON.parse(parts[1] as string);
        } catch {
          throw usage(`isolator ${name}: "${parts[1]}" is not a JSON value`);
        }
      } else if (name.startsWith('resource/')) {
        const kv = keyValues(spec, 'isolator');
        kv.delete('name');
        value = Object.fromEntries(kv);
      } else throw usage(`isolator ${name} is not supported for patching`);
      (app.isolators ??= []).push({ name, value });
    }
  if (app.isolators) rule(() => checkIsolators(app.isolators, 'actool'), 'isolators');
  return m;
}

export interface PatchOptions {
  /** Replace the whole manifest with this file (incompatible with edits). */
  manifestFile?: string;
  overwrite?: boolean;
  replace?: boolean;
  compression?: boolean;
}

/** Copies an ACI with a patched (or replaced) manifest; the output appears whole or not at all. */
export async function patchAci(input: string, output: string | undefined, patch: ManifestPatch, options: PatchOptions = {}): Promise<ImageManifest> {
  if (options.replace && options.overwrite) throw usage('--replace and --overwrite exclude each other');
  if (!options.replace && !output) throw usage('give an input and an output file (or use --replace)');
  if (options.replace && output) throw usage('with --replace give only the input file');
  if (options.manifestFile && Object.values(patch).some((v) => v)) throw usage('--manifest is incompatible with the other manifest editing options');
  const target = options.replace ? input : (output as string);
  if (!options.replace) {
    if (!target.endsWith('.aci')) throw usage(`the output's extension must be .aci (given ${target})`);
    if (!options.overwrite && (await stat(target).then(() => true, () => false))) throw new BasaltError('usage', `${target} already exists`, { hint: 'pass --overwrite to replace it' });
  }
  const { manifest } = await readAci(input, { mode: 'strict' });
  const next = options.manifestFile ? parseImageManifest(await readFile(options.manifestFile), options.manifestFile, 'strict') : patchManifest(manifest, patch);
  const bytes = options.manifestFile ? await readFile(options.manifestFile) : serializeManifest(parseImageManifest(serializeManifest(next), 'the patched manifest', 'strict'));
  const { stream } = await openAciTar(input);
  const tar = new PassThrough();
  let body: Readable = tar;
  if (options.compression !== false) body = tar.pipe(createGzip({ level: DEFAULT_GZIP_LEVEL }));
  const copying = (async () => {
    const writer = new TarWriter(tar);
    for await (const entry of readTar(stream, input)) {
      if (goClean(entry.path) === 'manifest') await writer.add({ ...entry, size: bytes.length }, bytes);
      else await writer.add(entry, entry.body);
    }
    await writer.finish();
  })().catch((e: unknown) => {
    tar.destroy(e as Error);
    throw e;
  });
  await Promise.all([writeStreamAtomic(target, body), copying]);
  return next;
}
