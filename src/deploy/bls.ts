/**
 * Boot Loader Specification type #1 entries: `key value` lines. Keys may repeat (initrd),
 * so values are kept as lists in order.
 */
export type BlsEntry = Map<string, string[]>;

export function parseBls(text: string): BlsEntry {
  const entry: BlsEntry = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const [, key, value] = m as unknown as [string, string, string];
    entry.set(key, [...(entry.get(key) ?? []), value]);
  }
  return entry;
}

export function blsValue(entry: BlsEntry, key: string): string | undefined {
  return entry.get(key)?.[0];
}

export function formatBls(fields: ReadonlyArray<[string, string]>): string {
  return fields.map(([k, v]) => `${k} ${v}\n`).join('');
}

/** The value of a kernel argument (`name=value`) in an options line, or undefined. */
export function kargValue(options: string, name: string): string | undefined {
  for (const arg of options.split(/\s+/)) if (arg.startsWith(`${name}=`)) return arg.slice(name.length + 1);
  return undefined;
}
