import { RuleError, checkAcIdentifier, checkQuantity, type ValidationMode } from './identifiers.js';
import type { AciIsolator } from './manifest.js';

/** How one isolator type is checked: its value's rules, and whether it may appear twice. */
interface IsolatorType {
  check(value: unknown, where: string): void;
  multipleAllowed: boolean;
  conflicts?: string;
}

function obj(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RuleError(`${where} must be a JSON object`);
  return value as Record<string, unknown>;
}

function nonEmptyStringSet(value: unknown, where: string): string[] {
  const set = obj(value, where).set;
  if (set !== undefined && set !== null && (!Array.isArray(set) || !set.every((s) => typeof s === 'string'))) throw new RuleError(`${where}.set must be a list of strings`);
  if (!Array.isArray(set) || set.length === 0) throw new RuleError(`${where}.set must be non-empty`);
  return set as string[];
}

function int(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new RuleError(`${where} must be an integer`);
  return value;
}

function resource(defaultMustBe: boolean, requestAllowed: boolean): IsolatorType {
  return {
    multipleAllowed: true,
    check(value, where) {
      const o = obj(value, where);
      if (o.default !== undefined && o.default !== null && typeof o.default !== 'boolean') throw new RuleError(`${where}.default must be true or false`);
      for (const k of ['request', 'limit'] as const) if (o[k] !== undefined && o[k] !== null) checkQuantity(o[k], `${where}.${k}`);
      if ((o.default === true) !== defaultMustBe) throw new RuleError(`${where}: default must be ${defaultMustBe}`);
      if (!requestAllowed && o.request !== undefined && o.request !== null) throw new RuleError(`${where}: request is not supported by this resource and must be empty`);
    },
  };
}

function seccomp(conflicts: string): IsolatorType {
  return {
    multipleAllowed: false,
    conflicts,
    check(value, where) {
      nonEmptyStringSet(value, where);
      const errno = obj(value, where).errno;
      if (errno === undefined || errno === null || errno === '') return;
      if (typeof errno !== 'string') throw new RuleError(`${where}.errno must be a string`);
      if (!errno.startsWith('E')) throw new RuleError(`${where}.errno must start with "E", got ${errno}`);
      if (!/^[A-Z0-9]+$/.test(errno)) throw new RuleError(`${where}.errno may contain only upper case letters and digits, got ${errno}`);
    },
  };
}

/** The isolator types of the spec (and actool) v0.8.11. */
const TYPES: Record<string, IsolatorType> = {
  'resource/block-bandwidth': resource(true, false),
  'resource/block-iops': resource(true, false),
  'resource/network-bandwidth': resource(true, false),
  'resource/cpu': resource(false, true),
  'resource/memory': resource(false, true),
  'os/linux/capabilities-retain-set': { multipleAllowed: true, check: (v, w) => void nonEmptyStringSet(v, w) },
  'os/linux/capabilities-remove-set': { multipleAllowed: true, check: (v, w) => void nonEmptyStringSet(v, w) },
  'os/linux/no-new-privileges': {
    multipleAllowed: true,
    check(v, w) {
      if (typeof v !== 'boolean') throw new RuleError(`${w} must be true or false`);
    },
  },
  'os/linux/seccomp-remove-set': seccomp('os/linux/seccomp-retain-set'),
  'os/linux/seccomp-retain-set': seccomp('os/linux/seccomp-remove-set'),
  'os/linux/oom-score-adj': {
    multipleAllowed: false,
    check(v, w) {
      const n = int(v, w);
      if (n < -1000 || n > 1000) throw new RuleError(`${w}: os/linux/oom-score-adj must be between -1000 and 1000, got ${n}`);
    },
  },
  'os/linux/cpu-shares': {
    multipleAllowed: false,
    check(v, w) {
      const n = int(v, w);
      if (n < 2 || n > 262144) throw new RuleError(`${w}: os/linux/cpu-shares must be between 2 and 262144, got ${n}`);
    },
  },
  'os/linux/selinux-context': {
    multipleAllowed: false,
    check(v, w) {
      const o = obj(v, w);
      for (const k of ['user', 'role', 'type', 'level']) {
        const s = o[k] ?? '';
        if (typeof s !== 'string') throw new RuleError(`${w}.${k} must be a string`);
        if (s === '' || (k !== 'level' && s.includes(':'))) throw new RuleError(`${w}: invalid ${k} value "${s}"`);
      }
    },
  },
  'os/unix/sysctl': {
    multipleAllowed: false,
    check(v, w) {
      for (const [k, s] of Object.entries(obj(v, w))) if (typeof s !== 'string') throw new RuleError(`${w}["${k}"] must be a string`);
    },
  },
};

export const ISOLATOR_NAMES: readonly string[] = Object.keys(TYPES);

/** Checks app.isolators: known names, valid values, no forbidden repeats or conflicting pairs. */
export function checkIsolators(value: unknown, mode: ValidationMode): AciIsolator[] {
  if (!Array.isArray(value)) throw new RuleError('app.isolators must be a JSON array');
  const seen = new Set<string>();
  return value.map((item, i) => {
    const where = `app.isolators[${i}]`;
    const o = obj(item, where);
    const name = o.name ?? '';
    if (typeof name !== 'string') throw new RuleError(`${where}.name must be a string`);
    if (name !== '') checkAcIdentifier(name, `${where}.name`, mode);
    const type = TYPES[name];
    if (!type) throw new RuleError(`${where}: unknown isolator "${name}" (known: ${ISOLATOR_NAMES.join(', ')})`);
    if (o.value === undefined || o.value === null) throw new RuleError(`${where} (${name}) has no value`);
    type.check(o.value, `${where} (${name}).value`);
    if (seen.has(name) && !type.multipleAllowed) throw new RuleError(`app.isolators: too many instances of ${name}`);
    if (type.conflicts && seen.has(type.conflicts)) throw new RuleError(`app.isolators: ${name} and ${type.conflicts} cannot be combined`);
    seen.add(name);
    return { name, value: o.value };
  });
}
