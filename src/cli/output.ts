import { BasaltError, EXIT_CODES, isBasaltError } from '../oci/errors.js';
import { loadYaml } from '../oci/yaml.js';

/** Everything the CLI writes goes through here, so the library stays silent. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 4)}\n`);
}

/** YAML is rare output; its library is loaded (a separate bundle chunk) only when asked for. */
export async function printFormatted(value: unknown, format: string, human: () => string): Promise<void> {
  if (format === 'json') printJson(value);
  else if (format === 'yaml') process.stdout.write((await loadYaml()).stringify(value));
  else process.stdout.write(human());
}

export function warn(message: string): void {
  process.stderr.write(`basalt: warning: ${message}\n`);
}

/** Prints an error the way every basalt command does and returns its exit code. */
export function reportError(e: unknown, debug: boolean): number {
  if (isBasaltError(e)) {
    process.stderr.write(`basalt: error: ${e.message}\n`);
    if (e.hint) process.stderr.write(`basalt: hint: ${e.hint}\n`);
    if (debug && e.cause) process.stderr.write(`basalt: cause: ${String((e.cause as Error).stack ?? e.cause)}\n`);
    return EXIT_CODES[e.kind];
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOSPC') return reportError(new BasaltError('io', `no space left on device (${err.message})`), debug);
  process.stderr.write(`basalt: internal error: ${err?.stack ?? String(e)}\n`);
  return 1;
}

export const EXIT_CODE_HELP = `
Exit codes:
  0    success
  1    internal error (a bug: please report it)
  2    usage: bad arguments or options
  3    not found: image, tag, blob or file does not exist
  4    authentication required or access denied
  5    integrity: digest/size mismatch, truncated or malformed input, unsafe archive entry
  6    unsupported: a valid format or option basalt does not handle
  7    network: registry unreachable or failing after retries
  8    refused by signature policy
  9    local I/O failure (full disk, permissions)
  10   a required external program is missing or failed
  130  interrupted
`;
