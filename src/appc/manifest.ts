import { BasaltError } from '../oci/errors.js';
import {
  RuleError, checkAcIdentifier, checkAcName, checkDate, checkHttpUrl, checkOsArch, checkSemVer, type ValidationMode,
} from './identifiers.js';
import { checkIsolators } from './isolators.js';

export type { ValidationMode } from './identifiers.js';

/** The App Container spec version basalt writes and validates against. */
export const AC_VERSION = '0.8.11';

export interface NameValue {
  name: string;
  value: string;
}
export interface AciPort {
  name: string;
  protocol: string;
  port: number;
  count?: number;
  socketActivated?: boolean;
}
export interface AciMountPoint {
  name: string;
  path: string;
  readOnly?: boolean;
}
export interface AciIsolator {
  name: string;
  value: unknown;
}
export interface AciApp {
  exec?: string[];
  eventHandlers?: { name: string; exec: string[] }[];
  user: string;
  group: string;
  supplementaryGIDs?: number[];
  workingDirectory?: string;
  environment?: NameValue[];
  mountPoints?: AciMountPoint[];
  ports?: AciPort[];
  isolators?: AciIsolator[];
  userAnnotations?: Record<string, string>;
  userLabels?: Record<string, string>;
}
export interface AciDependency {
  imageName: string;
  imageID?: string;
  labels?: NameValue[];
  size?: number;
}
export interface ImageManifest {
  acKind: 'ImageManifest';
  acVersion: string;
  name: string;
  labels?: NameValue[];
  app?: AciApp;
  annotations?: NameValue[];
  dependencies?: AciDependency[];
  pathWhitelist?: string[];
}

type Json = Record<string, unknown>;

/**
 * Parses and validates an image manifest. Every rule of the spec's schema is checked; the
 * error names the file and the rule. In 'actool' mode the checks are exactly actool 0.8.11's
 * (Go's JSON: keys matched case-insensitively, nulls ignored), so both tools agree.
 */
export function parseImageManifest(bytes: Buffer | string, what: string, mode: ValidationMode = 'strict'): ImageManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof bytes === 'string' ? bytes : bytes.toString('utf8'));
  } catch (e) {
    throw new BasaltError('invalid', `${what}: the image manifest is not JSON (${(e as Error).message})`);
  }
  try {
    return validateManifest(doc, mode);
  } catch (e) {
    if (e instanceof RuleError) throw new BasaltError('invalid', `${what}: invalid image manifest: ${e.rule}`, { hint: 'see the App Container spec v0.8.11, "Image Manifest Schema"' });
    throw e;
  }
}

/** A field of a JSON object: exact key in strict mode, Go's case-insensitive match in actool mode. */
function field(obj: Json, key: string, mode: ValidationMode): unknown {
  if (key in obj) return obj[key] === null ? undefined : obj[key];
  if (mode === 'actool') {
    const lower = key.toLowerCase();
    for (const k of Object.keys(obj).reverse()) if (k.toLowerCase() === lower) return obj[k] === null ? undefined : obj[k];
  }
  return undefined;
}

function object(value: unknown, where: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RuleError(`${where} must be a JSON object`);
  return value as Json;
}
function array(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new RuleError(`${where} must be a JSON array`);
  return value;
}
function string(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new RuleError(`${where} must be a string`);
  return value;
}
function uint(value: unknown, where: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) throw new RuleError(`${where} must be a non-negative integer`);
  return value;
}
function optString(obj: Json, key: string, mode: ValidationMode, where: string): string | undefined {
  const v = field(obj, key, mode);
  return v === undefined ? undefined : string(v, `${where}.${key}`);
}

function validateManifest(doc: unknown, mode: ValidationMode): ImageManifest {
  const top = object(doc, 'the manifest');
  const kind = optString(top, 'acKind', mode, 'manifest') ?? '';
  if (kind === '') throw new RuleError('acKind must be set (to "ImageManifest")');
  if (kind !== 'ImageManifest') throw new RuleError(`acKind "${kind}" is wrong: an image manifest has acKind "ImageManifest"`);
  const version = optString(top, 'acVersion', mode, 'manifest');
  if (version === undefined || version === '') throw new RuleError('acVersion must be set');
  checkSemVer(version, 'acVersion', mode);
  const name = optString(top, 'name', mode, 'manifest');
  if (name === undefined) throw new RuleError('name must be set');
  checkAcIdentifier(name, 'name', mode);
  const manifest: ImageManifest = { acKind: 'ImageManifest', acVersion: version, name };

  const labels = field(top, 'labels', mode);
  if (labels !== undefined) manifest.labels = checkLabels(labels, 'labels', mode);
  const app = field(top, 'app', mode);
  if (app !== undefined) manifest.app = checkApp(object(app, 'app'), mode);
  const annotations = field(top, 'annotations', mode);
  if (annotations !== undefined) manifest.annotations = checkAnnotations(annotations, mode);
  const deps = field(top, 'dependencies', mode);
  if (deps !== undefined) manifest.dependencies = array(deps, 'dependencies').map((d, i) => checkDependency(object(d, `dependencies[${i}]`), i, mode));
  const whitelist = field(top, 'pathWhitelist', mode);
  if (whitelist !== undefined)
    manifest.pathWhitelist = array(whitelist, 'pathWhitelist').map((p, i) => {
      const path = string(p, `pathWhitelist[${i}]`);
      if (mode === 'strict' && !path.startsWith('/')) throw new RuleError(`pathWhitelist[${i}] "${path}" must be an absolute path`);
      return path;
    });
  return manifest;
}

function nameValues(value: unknown, where: string, mode: ValidationMode): NameValue[] {
  return array(value, where).map((item, i) => {
    const o = object(item, `${where}[${i}]`);
    const name = optString(o, 'name', mode, `${where}[${i}]`);
    const v = optString(o, 'value', mode, `${where}[${i}]`) ?? '';
    if (name === undefined) {
      if (mode === 'strict') throw new RuleError(`${where}[${i}].name must be set`);
      return { name: '', value: v };
    }
    checkAcIdentifier(name, `${where}[${i}].name`, mode);
    return { name, value: v };
  });
}

export function checkLabels(value: unknown, where: string, mode: ValidationMode): NameValue[] {
  const labels = nameValues(value, where, mode);
  const seen = new Map<string, string>();
  for (const l of labels) {
    if (l.name === 'name') throw new RuleError(`${where}: "name" is not a valid label name (the image name is not a label)`);
    if (seen.has(l.name)) throw new RuleError(`${where}: duplicate label "${l.name}"`);
    seen.set(l.name, l.value);
  }
  checkOsArch(seen, where);
  return labels;
}

function checkAnnotations(value: unknown, mode: ValidationMode): NameValue[] {
  const annotations = nameValues(value, 'annotations', mode);
  const seen = new Map<string, string>();
  for (const a of annotations) {
    if (seen.has(a.name)) throw new RuleError(`annotations: duplicate annotation "${a.name}"`);
    seen.set(a.name, a.value);
  }
  const created = seen.get('created');
  if (created !== undefined) checkDate(created, 'annotation "created"');
  for (const key of ['homepage', 'documentation']) {
    const url = seen.get(key);
    if (url !== undefined) checkHttpUrl(url, `annotation "${key}"`);
  }
  return annotations;
}

function checkDependency(o: Json, i: number, mode: ValidationMode): AciDependency {
  const where = `dependencies[${i}]`;
  const imageName = optString(o, 'imageName', mode, where);
  if (imageName === undefined || imageName === '') throw new RuleError(`${where}.imageName cannot be empty`);
  checkAcIdentifier(imageName, `${where}.imageName`, mode);
  const dep: AciDependency = { imageName };
  const id = optString(o, 'imageID', mode, where);
  if (id !== undefined) {
    const parts = id.split('-');
    if (parts.length !== 2) throw new RuleError(`${where}.imageID "${id}" is not "sha512-HEX"`);
    if (parts[0] !== 'sha512') throw new RuleError(`${where}.imageID "${id}": the hash type must be sha512`);
    if (parts[1] === '') throw new RuleError(`${where}.imageID "${id}" has an empty hash value`);
    if (mode === 'strict' && !/^[0-9a-f]{1,128}$/.test(parts[1] as string)) throw new RuleError(`${where}.imageID "${id}": the hash value must be lower case hex`);
    dep.imageID = id;
  }
  const labels = field(o, 'labels', mode);
  if (labels !== undefined) dep.labels = checkLabels(labels, `${where}.labels`, mode);
  const size = field(o, 'size', mode);
  if (size !== undefined) dep.size = uint(size, `${where}.size`);
  return dep;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z_0-9.-]*$/;

function stringList(value: unknown, where: string): string[] {
  return array(value, where).map((s, i) => string(s, `${where}[${i}]`));
}

function checkApp(o: Json, mode: ValidationMode): AciApp {
  const exec = field(o, 'exec', mode);
  const execList = exec === undefined ? undefined : stringList(exec, 'app.exec');
  const user = optString(o, 'user', mode, 'app') ?? '';
  const group = optString(o, 'group', mode, 'app') ?? '';
  // Keys in the schema's order, so printed manifests read like actool's.
  const app: AciApp = { ...(execList ? { exec: execList } : {}), user, group };
  if (mode === 'strict') {
    if (!app.exec || app.exec.length === 0) throw new RuleError('app.exec is required and must be non-empty');
    if (!(app.exec[0] as string).startsWith('/')) throw new RuleError(`app.exec: the executable "${app.exec[0]}" must be an absolute path`);
  }
  const handlers = field(o, 'eventHandlers', mode);
  if (handlers !== undefined) {
    app.eventHandlers = array(handlers, 'app.eventHandlers').map((h, i) => {
      const ho = object(h, `app.eventHandlers[${i}]`);
      const name = optString(ho, 'name', mode, `app.eventHandlers[${i}]`) ?? '';
      if (name === '') throw new RuleError(`app.eventHandlers[${i}].name cannot be empty`);
      if (name !== 'pre-start' && name !== 'post-stop') throw new RuleError(`app.eventHandlers[${i}]: bad name "${name}" (pre-start or post-stop)`);
      const hexec = field(ho, 'exec', mode);
      return { name, exec: hexec === undefined ? [] : stringList(hexec, `app.eventHandlers[${i}].exec`) };
    });
  }
  const gids = field(o, 'supplementaryGIDs', mode);
  if (gids !== undefined)
    app.supplementaryGIDs = array(gids, 'app.supplementaryGIDs').map((g, i) => {
      if (typeof g !== 'number' || !Number.isInteger(g)) throw new RuleError(`app.supplementaryGIDs[${i}] must be an integer`);
      return g;
    });
  const wd = optString(o, 'workingDirectory', mode, 'app');
  if (wd !== undefined && wd !== '') app.workingDirectory = wd;
  const env = field(o, 'environment', mode);
  if (env !== undefined) app.environment = checkEnvironment(env, mode);
  const mounts = field(o, 'mountPoints', mode);
  if (mounts !== undefined) app.mountPoints = array(mounts, 'app.mountPoints').map((m, i) => checkMountPoint(object(m, `app.mountPoints[${i}]`), i, mode));
  const ports = field(o, 'ports', mode);
  if (ports !== undefined) app.ports = array(ports, 'app.ports').map((p, i) => checkPort(object(p, `app.ports[${i}]`), i, mode));
  const isolators = field(o, 'isolators', mode);
  if (isolators !== undefined) app.isolators = checkIsolators(isolators, mode);
  for (const key of ['userAnnotations', 'userLabels'] as const) {
    const v = field(o, key, mode);
    if (v === undefined) continue;
    const map = object(v, `app.${key}`);
    for (const [k, s] of Object.entries(map)) string(s, `app.${key}["${k}"]`);
    app[key] = map as Record<string, string>;
  }
  // actool checks these after decoding every field, in this order.
  if (user === '') throw new RuleError('app.user is required');
  if (group === '') throw new RuleError('app.group is required');
  if (wd !== undefined && wd !== '' && !wd.startsWith('/')) throw new RuleError('app.workingDirectory must be an absolute path');
  const names = new Set<string>();
  for (const h of app.eventHandlers ?? []) {
    if (names.has(h.name)) throw new RuleError(`app.eventHandlers: only one eventHandler named "${h.name}" is allowed`);
    names.add(h.name);
  }
  if (mode === 'strict') {
    const mountNames = new Set<string>();
    for (const m of app.mountPoints ?? []) {
      if (mountNames.has(m.name)) throw new RuleError(`app.mountPoints: duplicate mount point name "${m.name}"`);
      mountNames.add(m.name);
    }
    const portNames = new Set<string>();
    for (const p of app.ports ?? []) {
      if (portNames.has(p.name)) throw new RuleError(`app.ports: duplicate port name "${p.name}"`);
      portNames.add(p.name);
    }
  }
  return app;
}

function checkEnvironment(value: unknown, mode: ValidationMode): NameValue[] {
  const seen = new Set<string>();
  return array(value, 'app.environment').map((item, i) => {
    const o = object(item, `app.environment[${i}]`);
    const name = optString(o, 'name', mode, `app.environment[${i}]`) ?? '';
    const v = optString(o, 'value', mode, `app.environment[${i}]`) ?? '';
    if (name === '') throw new RuleError(`app.environment[${i}]: the variable name must not be empty`);
    if (!ENV_NAME.test(name)) throw new RuleError(`app.environment[${i}]: "${name}" is not a valid variable name`);
    if (mode === 'strict' && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
      throw new RuleError(`app.environment[${i}]: "${name}" may hold only letters, digits and underscores (IEEE Std 1003.1)`);
    if (seen.has(name)) throw new RuleError(`app.environment: duplicate variable "${name}"`);
    seen.add(name);
    return { name, value: v };
  });
}

function checkMountPoint(o: Json, i: number, mode: ValidationMode): AciMountPoint {
  const where = `app.mountPoints[${i}]`;
  const name = optString(o, 'name', mode, where);
  if (name !== undefined) checkAcName(name, `${where}.name`, mode);
  const path = optString(o, 'path', mode, where) ?? '';
  if (mode === 'strict') {
    if (name === undefined) throw new RuleError(`${where}.name must be set`);
    if (path === '') throw new RuleError(`${where}.path must be set`);
  }
  const readOnly = field(o, 'readOnly', mode);
  if (readOnly !== undefined && typeof readOnly !== 'boolean') throw new RuleError(`${where}.readOnly must be true or false`);
  const mp: AciMountPoint = { name: name ?? '', path };
  if (readOnly === true) mp.readOnly = true;
  return mp;
}

function checkPort(o: Json, i: number, mode: ValidationMode): AciPort {
  const where = `app.ports[${i}]`;
  const name = optString(o, 'name', mode, where);
  if (name !== undefined) checkAcName(name, `${where}.name`, mode);
  else if (mode === 'strict') throw new RuleError(`${where}.name must be set`);
  const protocol = optString(o, 'protocol', mode, where) ?? '';
  if (mode === 'strict' && protocol === '') throw new RuleError(`${where}.protocol must be set`);
  const portValue = field(o, 'port', mode);
  const port = portValue === undefined ? 0 : uint(portValue, `${where}.port`);
  const countValue = field(o, 'count', mode);
  const count = countValue === undefined ? 0 : uint(countValue, `${where}.count`);
  const sa = field(o, 'socketActivated', mode);
  if (sa !== undefined && typeof sa !== 'boolean') throw new RuleError(`${where}.socketActivated must be true or false`);
  if (port < 1 || port > 65535) throw new RuleError(`${where}: port must be in the 1-65535 range`);
  if (port + count > 65536) throw new RuleError(`${where}: the end of the port range must be in the 1-65535 range`);
  return { name: name ?? '', protocol, port, count: count === 0 ? 1 : count, socketActivated: sa === true };
}

/** The manifest as actool writes it: Go's field order, two-space indent only when asked. */
export function serializeManifest(m: ImageManifest, pretty = false): Buffer {
  return Buffer.from(JSON.stringify(m, undefined, pretty ? 4 : undefined), 'utf8');
}

export function labelOf(m: ImageManifest, name: string): string | undefined {
  return m.labels?.find((l) => l.name === name)?.value;
}
