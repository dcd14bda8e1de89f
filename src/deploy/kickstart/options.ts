import { BasaltError } from '../../oci/errors.js';

/** How a directive's options are read: flags take no value, values take one (`--o=v` or `--o v`). */
export type OptionSpec = Record<string, 'flag' | 'value'>;

export interface ParsedOptions {
  flags: Set<string>;
  values: Map<string, string>;
  positional: string[];
}

/**
 * Reads `--opt`, `--opt=value` and `--opt value` (Anaconda's forms) against `spec`; an option
 * outside it is an error naming the line. Option names are matched as written (kickstart's
 * documented spellings), an alias maps to its canonical name.
 */
export function parseOptions(words: readonly string[], spec: OptionSpec, where: string, directive: string, aliases: Record<string, string> = {}): ParsedOptions {
  const out: ParsedOptions = { flags: new Set(), values: new Map(), positional: [] };
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    if (!w.startsWith('--')) {
      out.positional.push(w);
      continue;
    }
    const eq = w.indexOf('=');
    const written = eq < 0 ? w : w.slice(0, eq);
    const name = aliases[written] ?? written;
    const kind = spec[name];
    if (kind === undefined) {
      const known = Object.keys(spec);
      throw new BasaltError('invalid', `${where}: ${directive} ${written} is not supported by basalt`, {
        hint: known.length ? `${directive} accepts ${known.join(', ')} (docs/kickstart.md lists the subset)` : `${directive} takes no options (docs/kickstart.md lists the subset)`,
      });
    }
    if (kind === 'flag') {
      if (eq >= 0) throw new BasaltError('invalid', `${where}: ${directive} ${written} takes no value`);
      out.flags.add(name);
      continue;
    }
    let value: string | undefined;
    if (eq >= 0) value = w.slice(eq + 1);
    else {
      value = words[i + 1];
      if (value === undefined || value.startsWith('--')) throw new BasaltError('invalid', `${where}: ${directive} ${written} needs a value`, { hint: `write ${written}=VALUE` });
      i++;
    }
    if (value === '') throw new BasaltError('invalid', `${where}: ${directive} ${written} has an empty value`);
    out.values.set(name, value);
  }
  return out;
}

/** A comma-separated list option (`--groups=a,b`). */
export function listValue(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}
