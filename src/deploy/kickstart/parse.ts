import { tokenizeLine } from './tokenize.js';
import { parseOptions, type OptionSpec } from './options.js';
import { invalid, newDraft, type Draft } from './draft.js';
import { clearpart, ignoredisk, ostreecontainer, part, reqpart } from './storage.js';
import { bare, bootloader, firewall, keyboard, lang, network, rootpw, services, sshkey, timezone, user } from './system.js';
import type { Kickstart, Script } from './types.js';

type Handler = (d: Draft, words: string[], where: string, line: number) => void;

const DIRECTIVES: Record<string, Handler> = {
  ostreecontainer,
  clearpart,
  ignoredisk,
  reqpart,
  part,
  user,
  rootpw,
  sshkey,
  network,
  services: (d, w, where) => services(d, w, where),
  firewall,
  timezone,
  lang,
  keyboard,
  bootloader,
  text: (d, w, where, line) => bare(d, 'text', w, where, line),
  reboot: (d, w, where, line) => bare(d, 'reboot', w, where, line),
  poweroff: (d, w, where, line) => bare(d, 'poweroff', w, where, line),
  halt: (d, w, where, line) => bare(d, 'halt', w, where, line),
};

function scriptHeader(words: string[], where: string, line: number): Omit<Script, 'body'> {
  const kind = words[0] === '%pre' ? 'pre' : 'post';
  const spec: OptionSpec = { '--interpreter': 'value', '--erroronfail': 'flag', ...(kind === 'post' ? { '--nochroot': 'flag' as const } : {}) };
  const o = parseOptions(words.slice(1), spec, where, words[0] as string);
  if (o.positional.length) throw invalid(where, `${words[0]} takes no arguments besides options (got "${o.positional[0]}")`);
  const interpreter = o.values.get('--interpreter') ?? '/bin/sh';
  if (!interpreter.startsWith('/')) throw invalid(where, `${words[0]} --interpreter ${interpreter} is not an absolute path`);
  return { kind, interpreter, nochroot: o.flags.has('--nochroot'), errorOnFail: o.flags.has('--erroronfail'), line };
}

/**
 * Parses the kickstart subset of docs/kickstart.md. Every error names `source:line`; anything
 * outside the subset is an error rather than being ignored, because an installer that skips a
 * line the author relied on installs the wrong system.
 */
export function parseKickstart(text: string, source: string): Kickstart {
  const d = newDraft(source);
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    const where = `${source}:${line}`;
    const words = tokenizeLine(lines[i] as string, where);
    const first = words[0];
    if (first === undefined) continue;
    if (first.startsWith('%')) {
      if (first !== '%pre' && first !== '%post') {
        if (first === '%end') throw invalid(where, '%end without a %pre or %post section');
        throw invalid(where, `section ${first} is not supported by basalt`, first === '%packages' ? 'packages come from the image: build them into it' : 'basalt supports %pre and %post (docs/kickstart.md)');
      }
      const header = scriptHeader(words, where, line);
      const body: string[] = [];
      let end = -1;
      for (let j = i + 1; j < lines.length; j++) {
        if ((lines[j] as string).trim() === '%end') {
          end = j;
          break;
        }
        body.push(lines[j] as string);
      }
      if (end < 0) throw invalid(where, `${first} has no %end`, 'close the section with a line holding only %end');
      d.scripts.push({ ...header, body: `${body.join('\n')}\n` });
      i = end;
      continue;
    }
    const handler = Object.hasOwn(DIRECTIVES, first) ? DIRECTIVES[first] : undefined;
    if (!handler) throw invalid(where, `${first} is not a kickstart directive basalt supports`, 'docs/kickstart.md lists the subset; remove the line or do it in %post');
    handler(d, words.slice(1), where, line);
  }
  return finishKickstart(d);
}

/** Checks that need the whole file: required directives and cross references. */
function finishKickstart(d: Draft): Kickstart {
  const { seen, ostreecontainer: oc, ...rest } = d;
  if (!oc) throw invalid(d.source, 'no ostreecontainer line: basalt installs an image', 'add ostreecontainer --url=REGISTRY/IMAGE:TAG');
  if (!d.parts.some((p) => p.mountpoint === '/')) throw invalid(d.source, 'no part / line: where does the root filesystem go?', 'add part / --grow --fstype=ext4');
  const known = new Set(['root', ...d.users.map((u) => u.name)]);
  for (const k of d.sshkeys) if (!known.has(k.username)) throw invalid(`${d.source}:${k.line}`, `sshkey --username ${k.username}: no user ${k.username} in this kickstart`, 'add a user line for it, or use root');
  const disks = d.parts.map((p) => p.ondisk).filter((x): x is string => x !== undefined);
  if (new Set(disks).size > 1) throw invalid(d.source, `part --ondisk names several disks (${[...new Set(disks)].join(', ')}): basalt installs onto one disk`);
  void seen;
  return { ...rest, ostreecontainer: oc };
}
