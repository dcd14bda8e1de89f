import { BasaltError, type ErrorKind } from '../errors.js';

/** One entry of a registry's JSON error body (OCI distribution spec, "Error Codes"). */
export interface RegistryErrorEntry {
  code: string;
  message: string;
}

/** Parses `{"errors":[{"code":…,"message":…}]}`; anything else yields an empty list. */
export function parseRegistryErrors(body: string): RegistryErrorEntry[] {
  try {
    const doc = JSON.parse(body) as unknown;
    if (typeof doc !== 'object' || doc === null) return [];
    const errors = (doc as { errors?: unknown }).errors;
    if (!Array.isArray(errors)) return [];
    return errors
      .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null)
      .map((e) => ({ code: typeof e.code === 'string' ? e.code : 'UNKNOWN', message: typeof e.message === 'string' ? e.message : '' }));
  } catch {
    return [];
  }
}

function describeErrors(errors: RegistryErrorEntry[], body: string): string {
  if (errors.length > 0) return errors.map((e) => (e.message ? `${e.code}: ${e.message}` : e.code)).join('; ');
  const text = body.trim().replace(/\s+/g, ' ');
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

export interface StatusErrorContext {
  /** Registry host, e.g. `localhost:5000`. */
  registry: string;
  /** Repository the request was about, when there is one. */
  repository?: string;
  /** What was asked for, e.g. `manifest latest`, `blob sha256:…`. */
  what: string;
  /** Whether credentials were sent (a 401 then means they were rejected). */
  sentCredentials?: boolean;
  attempts?: number;
}

/** Turns a registry's error answer into a BasaltError that names the thing asked for. */
export function statusError(status: number, body: string, ctx: StatusErrorContext): BasaltError {
  const errors = parseRegistryErrors(body);
  const detail = describeErrors(errors, body);
  const where = ctx.repository ? `${ctx.registry}/${ctx.repository}` : ctx.registry;
  const suffix = detail ? ` (${detail})` : '';
  const codes = new Set(errors.map((e) => e.code));
  if (status === 401) {
    return new BasaltError(
      'auth',
      ctx.sentCredentials ? `authentication failed for ${where}: the registry rejected the credentials or they lack access${suffix}` : `authentication required for ${where}${suffix}`,
      { hint: `log in with \`basalt image login ${ctx.registry}\` or pass --creds` },
    );
  }
  if (status === 403) return new BasaltError('denied', `access to ${where} denied while requesting ${ctx.what}${suffix}`, { hint: 'check that the account has permission for this repository' });
  if (status === 404) {
    const subject = codes.has('NAME_UNKNOWN') ? `repository ${where}` : `${ctx.what} in ${where}`;
    return new BasaltError('not-found', `${subject} not found${suffix}`, { hint: 'check the name, tag or digest' });
  }
  if (status === 429 || status >= 500) {
    const tries = ctx.attempts !== undefined ? ` after ${ctx.attempts} attempt${ctx.attempts === 1 ? '' : 's'}` : '';
    return new BasaltError('network', `${ctx.what} at ${where}: registry answered HTTP ${status}${tries}${suffix}`, { hint: 'the registry is overloaded or failing; retry later' });
  }
  let kind: ErrorKind = 'invalid';
  if (codes.has('DIGEST_INVALID') || codes.has('SIZE_INVALID')) kind = 'integrity';
  else if (codes.has('UNSUPPORTED') || status === 405) kind = 'unsupported';
  else if (codes.has('DENIED')) kind = 'denied';
  return new BasaltError(kind, `${ctx.what} at ${where}: registry answered HTTP ${status}${suffix}`);
}
