/**
 * bootc-image-builder's config.toml: the disk customizations users already write for bib
 * (users with password, SSH key and groups; kernel arguments; filesystem minimum sizes;
 * hostname; an installer kickstart). Parsed strictly: an unknown key is refused with its
 * full path, so a typo never silently drops a setting.
 */
import { parse, TomlError } from 'smol-toml';
import { BasaltError } from '../oci/errors.js';
import { parseByteSize } from './sizes.js';

export interface BibUser {
  name: string;
  /** Plain text, or a crypt(3) hash when it starts with "$" (bib accepts both). */
  password?: string;
  /** One or more SSH public keys, one per line. */
  key?: string;
  groups: string[];
}

export interface BibFilesystem {
  mountpoint: string;
  /** Bytes. */
  minsize: number;
}

export interface BibConfig {
  users: BibUser[];
  /** Kernel arguments to append, as written ("console=ttyS0 quiet"). */
  kernelAppend?: string;
  filesystems: BibFilesystem[];
  hostname?: string;
  /** customizations.installer.kickstart.contents, for installer ISOs. */
  kickstart?: string;
}

type Table = Record<string, unknown>;

const isTable = (v: unknown): v is Table => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

class Checker {
  constructor(private readonly file: string) {}

  where(path: string): string {
    return `${this.file}: ${path}`;
  }

  fail(path: string, problem: string, hint?: string): never {
    throw new BasaltError('invalid', `${this.where(path)} ${problem}`, { hint: hint ?? 'see bootc-image-builder\'s config.toml documentation for the accepted keys' });
  }

  table(v: unknown, path: string, allowed: readonly string[]): Table {
    if (!isTable(v)) this.fail(path, 'must be a table');
    for (const key of Object.keys(v)) if (!allowed.includes(key)) this.fail(`${path}.${key}`, 'is not a known key', `known keys in ${path}: ${allowed.join(', ')}`);
    return v;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== 'string') this.fail(path, 'must be a string');
    return v;
  }

  optionalString(t: Table, key: string, path: string): string | undefined {
    return t[key] === undefined ? undefined : this.string(t[key], `${path}.${key}`);
  }

  stringArray(v: unknown, path: string): string[] {
    if (!Array.isArray(v)) this.fail(path, 'must be an array of strings');
    return v.map((item, i) => this.string(item, `${path}[${i}]`));
  }

  tableArray(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, `must be an array of tables ([[${path}]])`);
    return v;
  }
}

const USER_NAME = /^[a-z_][a-z0-9_-]{0,30}\$?$/;
const GROUP_NAME = USER_NAME;

function parseUser(c: Checker, v: unknown, path: string): BibUser {
  const t = c.table(v, path, ['name', 'password', 'key', 'groups']);
  if (t.name === undefined) c.fail(path, 'has no name', 'every [[customizations.user]] needs name = "..."');
  const name = c.string(t.name, `${path}.name`);
  if (!USER_NAME.test(name)) c.fail(`${path}.name`, `"${name}" is not a valid user name`, 'use lower-case letters, digits, "_" and "-", starting with a letter or "_", at most 32 characters');
  const groups = t.groups === undefined ? [] : c.stringArray(t.groups, `${path}.groups`);
  for (const [i, g] of groups.entries()) if (!GROUP_NAME.test(g)) c.fail(`${path}.groups[${i}]`, `"${g}" is not a valid group name`);
  const user: BibUser = { name, groups };
  const password = c.optionalString(t, 'password', path);
  if (password !== undefined) user.password = password;
  const key = c.optionalString(t, 'key', path);
  if (key !== undefined) {
    if (!/^(ssh-|ecdsa-|sk-)/m.test(key.trim())) c.fail(`${path}.key`, 'is not an SSH public key', 'paste the line from your id_*.pub file');
    user.key = key.trim();
  }
  return user;
}

function parseFilesystem(c: Checker, v: unknown, path: string): BibFilesystem {
  const t = c.table(v, path, ['mountpoint', 'minsize']);
  if (t.mountpoint === undefined) c.fail(path, 'has no mountpoint');
  const mountpoint = c.string(t.mountpoint, `${path}.mountpoint`);
  if (!mountpoint.startsWith('/') || /(^|\/)\.\.?(\/|$)/.test(mountpoint) || (mountpoint.length > 1 && mountpoint.endsWith('/')))
    c.fail(`${path}.mountpoint`, `"${mountpoint}" is not a clean absolute path`);
  if (t.minsize === undefined) c.fail(path, 'has no minsize');
  const raw = t.minsize;
  if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'bigint') c.fail(`${path}.minsize`, 'must be a number of bytes or a size string like "10 GiB"');
  const minsize = parseByteSize(typeof raw === 'bigint' ? Number(raw) : raw, c.where(`${path}.minsize`));
  return { mountpoint, minsize };
}

/** Parses config.toml text; `file` names it in every error. */
export function parseBibConfig(text: string, file: string): BibConfig {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (e) {
    if (e instanceof TomlError) throw new BasaltError('invalid', `${file}:${e.line}:${e.column}: not valid TOML: ${e.message.split('\n')[0]}`, { cause: e });
    throw e;
  }
  const c = new Checker(file);
  const root = c.table(doc, '(top level)', ['customizations']);
  const config: BibConfig = { users: [], filesystems: [] };
  if (root.customizations === undefined) return config;
  const cz = c.table(root.customizations, 'customizations', ['user', 'kernel', 'filesystem', 'hostname', 'installer']);

  if (cz.user !== undefined) config.users = c.tableArray(cz.user, 'customizations.user').map((u, i) => parseUser(c, u, `customizations.user[${i}]`));
  const names = new Set<string>();
  for (const [i, u] of config.users.entries()) {
    if (names.has(u.name)) c.fail(`customizations.user[${i}].name`, `repeats user "${u.name}"`);
    names.add(u.name);
  }

  if (cz.kernel !== undefined) {
    const k = c.table(cz.kernel, 'customizations.kernel', ['append']);
    const append = c.optionalString(k, 'append', 'customizations.kernel');
    if (append !== undefined && append.trim() !== '') config.kernelAppend = append.trim();
  }

  if (cz.filesystem !== undefined)
    config.filesystems = c.tableArray(cz.filesystem, 'customizations.filesystem').map((f, i) => parseFilesystem(c, f, `customizations.filesystem[${i}]`));
  const mounts = new Set<string>();
  for (const [i, f] of config.filesystems.entries()) {
    if (mounts.has(f.mountpoint)) c.fail(`customizations.filesystem[${i}].mountpoint`, `repeats "${f.mountpoint}"`);
    mounts.add(f.mountpoint);
  }

  const hostname = c.optionalString(cz, 'hostname', 'customizations');
  if (hostname !== undefined) {
    if (!/^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/.test(hostname))
      c.fail('customizations.hostname', `"${hostname}" is not a valid host name`);
    config.hostname = hostname;
  }

  if (cz.installer !== undefined) {
    const inst = c.table(cz.installer, 'customizations.installer', ['kickstart']);
    if (inst.kickstart !== undefined) {
      const ks = c.table(inst.kickstart, 'customizations.installer.kickstart', ['contents']);
      const contents = c.optionalString(ks, 'contents', 'customizations.installer.kickstart');
      if (contents !== undefined) config.kickstart = contents;
    }
  }
  return config;
}

/** The minimum size the config asks for the root filesystem ("/"), if any. */
export function rootMinSize(config: BibConfig): number | undefined {
  return config.filesystems.find((f) => f.mountpoint === '/')?.minsize;
}
