import { BasaltError } from '../oci/errors.js';
import { KARGS_DIR, parseKargsFile } from './kargs.js';
import type { RootTree, TreeEntry } from './root-tree.js';

/**
 * The checks of `bootc container lint` that apply to basalt's images, run against a tree
 * index. Each returns the problems it found (none: it passed); messages name the paths.
 */
export type LintLevel = 'fatal' | 'warning';

export interface LintProblem {
  message: string;
  /** Every path involved (messages show the first few). */
  paths: string[];
}

export interface LintRule {
  name: string;
  level: LintLevel;
  description: string;
  check(tree: RootTree): LintProblem[];
}

const SHOWN = 8;
function listed(header: string, paths: string[]): LintProblem {
  const shown = paths.slice(0, SHOWN).map((p) => `/${p}`).join(', ');
  const more = paths.length > SHOWN ? ` and ${paths.length - SHOWN} more` : '';
  return { message: `${header}: ${shown}${more}`, paths: paths.map((p) => `/${p}`) };
}

function under(tree: RootTree, dir: string): string[] {
  const prefix = `${dir}/`;
  return [...tree.entries.keys()].filter((p) => p.startsWith(prefix));
}

function children(tree: RootTree, dir: string): string[] {
  const prefix = `${dir}/`;
  return [...tree.entries.keys()].filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes('/'));
}

/** Follows symlinks among the tree's own entries (for /lib -> usr/lib in merged-/usr trees). */
export function resolveInTree(tree: RootTree, path: string): { path: string; entry: TreeEntry } | undefined {
  let parts = path.split('/').filter(Boolean);
  for (let hops = 0; hops < 40; hops++) {
    let resolved: string[] = [];
    let restarted = false;
    for (const [i, part] of parts.entries()) {
      const candidate = [...resolved, part];
      const entry = tree.entries.get(candidate.join('/'));
      if (!entry) return undefined;
      if (entry.type === 'symlink' && entry.linkname !== undefined) {
        const base = entry.linkname.startsWith('/') ? [] : resolved;
        parts = [...base, ...entry.linkname.split('/').filter(Boolean), ...parts.slice(i + 1)];
        parts = parts.reduce<string[]>((acc, p) => (p === '..' ? acc.slice(0, -1) : p === '.' ? acc : [...acc, p]), []);
        restarted = true;
        break;
      }
      resolved = candidate;
    }
    if (!restarted) {
      const entry = tree.entries.get(resolved.join('/'));
      return entry ? { path: resolved.join('/'), entry } : undefined;
    }
  }
  return undefined;
}

const kernel: LintRule = {
  name: 'kernel',
  level: 'fatal',
  description: 'exactly one kernel, /usr/lib/modules/KVER/vmlinuz, with its initramfs.img beside it',
  check(tree) {
    const kernels = children(tree, 'usr/lib/modules').filter((d) => tree.entries.get(d)?.type === 'directory' && tree.entries.get(`${d}/vmlinuz`)?.type === 'file');
    if (kernels.length === 0) return [{ message: 'no kernel: no /usr/lib/modules/KVER/vmlinuz', paths: ['/usr/lib/modules'] }];
    if (kernels.length > 1) return [listed(`${kernels.length} kernels; an image carries exactly one`, kernels)];
    const dir = kernels[0] as string;
    if (tree.entries.get(`${dir}/initramfs.img`)?.type !== 'file') return [{ message: `kernel /${dir} has no initramfs: /${dir}/initramfs.img is missing`, paths: [`/${dir}/initramfs.img`] }];
    return [];
  },
};

const etcUsrEtc: LintRule = {
  name: 'etc-usretc',
  level: 'fatal',
  description: 'only one of /etc and /usr/etc; a container image has /etc (the move to /usr/etc happens at install)',
  check(tree) {
    if (tree.entries.has('etc') && tree.entries.has('usr/etc')) return [{ message: 'both /etc and /usr/etc exist; /usr/etc is an ostree implementation detail, keep only /etc', paths: ['/etc', '/usr/etc'] }];
    return [];
  },
};

/** Paths named by tmpfiles.d lines (column 2), which systemd-tmpfiles recreates at boot. */
function tmpfilesPaths(tree: RootTree): Set<string> {
  const out = new Set<string>();
  for (const [path, data] of tree.contents) {
    if (!/^(usr\/lib|etc)\/tmpfiles\.d\//.test(path)) continue;
    for (const line of data.toString('utf8').split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 2 || (fields[0] ?? '').startsWith('#')) continue;
      out.add((fields[1] as string).replace(/^\/+/, '').replace(/\/+$/, ''));
    }
  }
  return out;
}

const varTmpfiles: LintRule = {
  name: 'var-tmpfiles',
  level: 'warning',
  description: 'content in /var is copied only at the first install; updates never change it (use tmpfiles.d)',
  check(tree) {
    const covered = tmpfilesPaths(tree);
    const isCovered = (p: string): boolean => covered.has(p);
    const files: string[] = [];
    const dirs: string[] = [];
    for (const p of under(tree, 'var')) {
      const e = tree.entries.get(p) as TreeEntry;
      if (isCovered(p)) continue;
      if (e.type === 'directory' || e.type === 'symlink') dirs.push(p);
      else files.push(p);
    }
    const problems: LintProblem[] = [];
    if (files.length) problems.push(listed(`${files.length} files in /var that image updates will not change`, files));
    if (dirs.length) problems.push(listed(`${dirs.length} directories or links in /var without a tmpfiles.d entry`, dirs));
    return problems;
  },
};

const runTmp: LintRule = {
  name: 'nonempty-run-tmp',
  level: 'warning',
  description: '/run and /tmp are empty in an image (they are tmpfs at runtime: their content is hidden)',
  check(tree) {
    const found = [...under(tree, 'run'), ...under(tree, 'tmp')].filter((p) => tree.entries.get(p)?.type !== 'directory');
    return found.length ? [listed('content in /run or /tmp, hidden at runtime', found)] : [];
  },
};

const systemd: LintRule = {
  name: 'systemd',
  level: 'fatal',
  description: 'systemd is the init system (/usr/lib/systemd/systemd)',
  check(tree) {
    const found = resolveInTree(tree, 'usr/lib/systemd/systemd') ?? resolveInTree(tree, 'lib/systemd/systemd');
    return found?.entry.type === 'file' ? [] : [{ message: 'systemd is missing: no /usr/lib/systemd/systemd', paths: ['/usr/lib/systemd/systemd'] }];
  },
};

const kargs: LintRule = {
  name: 'bootc-kargs',
  level: 'fatal',
  description: 'every /usr/lib/bootc/kargs.d/*.toml parses: kargs = [...], optional match-architectures = [...]',
  check(tree) {
    const problems: LintProblem[] = [];
    for (const p of children(tree, KARGS_DIR).filter((p) => p.endsWith('.toml'))) {
      const data = tree.contents.get(p);
      if (data === undefined) {
        problems.push({ message: `/${p} is not a regular file of at most 1 MiB`, paths: [`/${p}`] });
        continue;
      }
      try {
        parseKargsFile(data.toString('utf8'), `/${p}`);
      } catch (e) {
        if (!(e instanceof BasaltError)) throw e;
        problems.push({ message: e.message, paths: [`/${p}`] });
      }
    }
    return problems;
  },
};

/** Names declared by sysusers.d lines of the given types (u: users, g and u: groups). */
function sysusersNames(tree: RootTree, types: string[]): Set<string> {
  const out = new Set<string>();
  for (const [path, data] of tree.contents) {
    if (!/^(usr\/lib|etc)\/sysusers\.d\//.test(path)) continue;
    for (const line of data.toString('utf8').split('\n')) {
      const [type, name] = line.trim().split(/\s+/);
      if (type && name && types.includes(type.replace(/!$/, ''))) out.add(name);
    }
  }
  return out;
}

function namesIn(data: Buffer | undefined): string[] {
  if (!data) return [];
  return data.toString('utf8').split('\n').map((l) => l.split(':')[0] ?? '').filter((n) => n !== '' && !n.startsWith('#'));
}

const sysusers: LintRule = {
  name: 'sysusers',
  level: 'warning',
  description: 'users and groups in /etc/passwd and /etc/group are declared in sysusers.d (else a locally changed /etc hides new ones)',
  check(tree) {
    const etc = tree.entries.has('etc') ? 'etc' : 'usr/etc';
    const users = sysusersNames(tree, ['u']);
    const groups = sysusersNames(tree, ['u', 'g', 'm']);
    const problems: LintProblem[] = [];
    const missingUsers = namesIn(tree.contents.get(`${etc}/passwd`)).filter((u) => !users.has(u));
    const missingGroups = namesIn(tree.contents.get(`${etc}/group`)).filter((g) => !groups.has(g));
    if (missingUsers.length) problems.push({ message: `/${etc}/passwd has users without a sysusers.d entry: ${missingUsers.join(', ')}`, paths: [`/${etc}/passwd`] });
    if (missingGroups.length) problems.push({ message: `/${etc}/group has groups without a sysusers.d entry: ${missingGroups.join(', ')}`, paths: [`/${etc}/group`] });
    return problems;
  },
};

const utf8: LintRule = {
  name: 'utf8',
  level: 'fatal',
  description: 'every file name and symlink target is UTF-8 (ostree refuses others)',
  check(tree) {
    return tree.nonUtf8.length ? [listed('names that are not UTF-8', [...tree.nonUtf8])] : [];
  },
};

const boot: LintRule = {
  name: 'nonempty-boot',
  level: 'warning',
  description: '/boot exists and is empty: the kernel belongs in /usr/lib/modules, /boot is masked at runtime',
  check(tree) {
    if (!tree.entries.has('boot')) return [{ message: '/boot is missing', paths: ['/boot'] }];
    const found = children(tree, 'boot');
    return found.length ? [listed('/boot is not empty', found)] : [];
  },
};

const varRun: LintRule = {
  name: 'var-run',
  level: 'fatal',
  description: '/var/run is a symlink to /run',
  check(tree) {
    const e = tree.entries.get('var/run');
    return e && e.type !== 'symlink' ? [{ message: '/var/run is not a symlink (to ../run)', paths: ['/var/run'] }] : [];
  },
};

const API_DIRS = ['dev', 'proc', 'sys', 'run', 'tmp', 'var'];
const apiDirs: LintRule = {
  name: 'api-base-directories',
  level: 'fatal',
  description: `the API filesystem mount points exist as directories: ${API_DIRS.map((d) => `/${d}`).join(' ')}`,
  check(tree) {
    const bad = API_DIRS.filter((d) => tree.entries.get(d)?.type !== 'directory');
    return bad.length ? [listed('missing or not a directory', bad)] : [];
  },
};

const baseimageRoot: LintRule = {
  name: 'baseimage-root',
  level: 'fatal',
  description: 'the ostree layout: an empty directory /sysroot and the symlink /ostree -> sysroot/ostree',
  check(tree) {
    const problems: LintProblem[] = [];
    if (tree.entries.get('sysroot')?.type !== 'directory') problems.push({ message: '/sysroot is missing or not a directory', paths: ['/sysroot'] });
    const link = tree.entries.get('ostree');
    if (link?.type !== 'symlink' || link.linkname !== 'sysroot/ostree') problems.push({ message: '/ostree is not a symlink to sysroot/ostree', paths: ['/ostree'] });
    return problems;
  },
};

const devices: LintRule = {
  name: 'device-nodes',
  level: 'warning',
  description: 'no device nodes (ostree drops them; /dev is devtmpfs at runtime)',
  check(tree) {
    const found = [...tree.entries].filter(([, e]) => e.type === 'char' || e.type === 'block').map(([p]) => p);
    return found.length ? [listed('device nodes, dropped at install', found)] : [];
  },
};

const varLog: LintRule = {
  name: 'var-log',
  level: 'warning',
  description: 'no non-empty log files in /var/log (per-machine state, and timestamps break reproducibility)',
  check(tree) {
    const found = under(tree, 'var/log').filter((p) => {
      const e = tree.entries.get(p) as TreeEntry;
      return e.type === 'file' && e.size > 0;
    });
    return found.length ? [listed('non-empty log files', found)] : [];
  },
};

const buildahInjected: LintRule = {
  name: 'buildah-injected',
  level: 'warning',
  description: 'no empty /etc/hostname or /etc/resolv.conf left behind by a container build',
  check(tree) {
    const found = ['etc/hostname', 'etc/resolv.conf'].filter((p) => {
      const e = tree.entries.get(p);
      return e?.type === 'file' && e.size === 0;
    });
    return found.length ? [listed('empty files a container build system may have made', found)] : [];
  },
};

export const LINT_RULES: readonly LintRule[] = [apiDirs, baseimageRoot, kargs, buildahInjected, devices, etcUsrEtc, kernel, boot, runTmp, sysusers, systemd, utf8, varLog, varRun, varTmpfiles].sort((a, b) => (a.name < b.name ? -1 : 1));
