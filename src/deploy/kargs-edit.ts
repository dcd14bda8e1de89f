import { BasaltError } from '../oci/errors.js';
import { DEPLOYMENT_KARG } from './sysroot.js';

/**
 * Kernel-argument lists as basalt keeps them per deployment. ostree adds `ostree=` itself on
 * every deploy, and `basalt.deployment=` names one deployment, so both are dropped when a
 * deployment's arguments are carried into the next one.
 */
export function splitKargs(options: string): string[] {
  return options.split(/\s+/).filter((a) => a !== '');
}

/** The arguments a new deployment inherits: everything but ostree= and basalt.deployment=. */
export function carriedKargs(options: string): string[] {
  return splitKargs(options).filter((a) => !a.startsWith('ostree=') && !a.startsWith(`${DEPLOYMENT_KARG}=`));
}

/** Removes one occurrence of each of `remove` (first match), keeping order. */
function removeEach(args: readonly string[], remove: readonly string[]): string[] {
  const out = [...args];
  for (const r of remove) {
    const i = out.indexOf(r);
    if (i >= 0) out.splice(i, 1);
  }
  return out;
}

/** Multiset difference a − b (repeated arguments such as console= count one by one). */
function multisetMinus(a: readonly string[], b: readonly string[]): string[] {
  const rest = [...b];
  const out: string[] = [];
  for (const x of a) {
    const i = rest.indexOf(x);
    if (i >= 0) rest.splice(i, 1);
    else out.push(x);
  }
  return out;
}

/**
 * bootc's rule for kargs.d across an update: only the *differences* between the old image's
 * and the new image's kargs.d apply. Arguments the old image had and the new one drops are
 * removed; arguments the new one adds are appended; everything else (root=, rw, arguments the
 * owner added with `basalt kargs`, image arguments the owner deleted) stays as it is.
 */
export function applyImageKargsDiff(current: readonly string[], oldImage: readonly string[], newImage: readonly string[]): string[] {
  const removed = multisetMinus(oldImage, newImage);
  const added = multisetMinus(newImage, oldImage);
  return [...removeEach(current, removed), ...added];
}

export interface KargsEdit {
  /** `NAME[=VALUE]`: appended (repeats allowed, as `console=`). */
  append?: readonly string[];
  /** `NAME` deletes every `NAME` / `NAME=…`; `NAME=VALUE` deletes that exact argument. */
  delete?: readonly string[];
  /** `NAME=VALUE` replaces every `NAME…` with this one; `NAME=OLD=NEW` replaces only `NAME=OLD`. */
  replace?: readonly string[];
}

const nameOf = (arg: string): string => (arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg);

function checkArg(arg: string, flag: string): void {
  if (arg === '' || /\s/.test(arg)) throw new BasaltError('usage', `${flag} "${arg}": a kernel argument is one word (NAME or NAME=VALUE)`);
  const name = nameOf(arg);
  if (name === 'ostree' || name === DEPLOYMENT_KARG) throw new BasaltError('usage', `${flag} "${arg}": ${name}= is managed by ostree and basalt`, { hint: 'edit other arguments' });
}

/** rpm-ostree kargs' editing rules: deletes, then replaces, then appends. */
export function editKargs(current: readonly string[], edit: KargsEdit): string[] {
  let out = [...current];
  for (const d of edit.delete ?? []) {
    checkArg(d, '--delete');
    const before = out.length;
    out = d.includes('=') ? removeEach(out, [d]) : out.filter((a) => nameOf(a) !== d);
    if (out.length === before) throw new BasaltError('usage', `--delete ${d}: no such kernel argument`, { hint: 'run basalt kargs to list them' });
  }
  for (const r of edit.replace ?? []) {
    checkArg(r, '--replace');
    const parts = r.split('=');
    if (parts.length < 2) throw new BasaltError('usage', `--replace ${r}: give NAME=VALUE or NAME=OLD=NEW`);
    const name = parts[0] as string;
    if (parts.length === 3) {
      const old = `${name}=${parts[1] as string}`;
      const i = out.indexOf(old);
      if (i < 0) throw new BasaltError('usage', `--replace ${r}: no kernel argument ${old}`);
      out[i] = `${name}=${parts[2] as string}`;
    } else {
      const first = out.findIndex((a) => nameOf(a) === name);
      if (first < 0) throw new BasaltError('usage', `--replace ${r}: no kernel argument named ${name}`, { hint: 'use --append to add it' });
      out = out.filter((a, i) => i === first || nameOf(a) !== name);
      out[first] = r;
    }
  }
  for (const a of edit.append ?? []) {
    checkArg(a, '--append');
    out.push(a);
  }
  return out;
}
