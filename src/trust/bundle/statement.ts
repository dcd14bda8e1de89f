import { BasaltError } from '../../oci/errors.js';

/** The DSSE payload type of an in-toto statement. */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
/** The statement types accepted (in-toto v1 and the v0.1 that older cosign wrote). */
const STATEMENT_TYPES: ReadonlySet<string> = new Set(['https://in-toto.io/Statement/v1', 'https://in-toto.io/Statement/v0.1']);

export interface InTotoSubject {
  name?: string;
  /** Algorithm name (`sha256`, ...) to lowercase hex. */
  digest: Record<string, string>;
}

/** An in-toto statement as read from a DSSE payload (only the fields verification needs typed). */
export interface InTotoStatement {
  _type: string;
  subject: InTotoSubject[];
  predicateType: string;
  predicate?: unknown;
}

function refuse(what: string, reason: string): never {
  throw new BasaltError('policy', `${what}: ${reason}`, { hint: 'the signature is not an in-toto statement basalt can bind to the artifact; ask the signer for a standard attestation' });
}

/** Parses and checks the shape of the in-toto statement inside a DSSE envelope. */
export function parseStatement(payloadType: string, payload: Buffer, what: string): InTotoStatement {
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) refuse(what, `DSSE payload type is ${JSON.stringify(payloadType)}, not ${IN_TOTO_PAYLOAD_TYPE}`);
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch (e) {
    refuse(what, `DSSE payload is not JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) refuse(what, 'statement is not a JSON object');
  const o = value as Record<string, unknown>;
  if (typeof o._type !== 'string' || !STATEMENT_TYPES.has(o._type)) refuse(what, `statement _type ${JSON.stringify(o._type)} is not an in-toto statement`);
  if (typeof o.predicateType !== 'string') refuse(what, 'statement has no predicateType');
  if (!Array.isArray(o.subject) || o.subject.length === 0) refuse(what, 'statement names no subject');
  for (const [i, s] of o.subject.entries()) {
    const digest = (s as { digest?: unknown } | null)?.digest;
    if (typeof digest !== 'object' || digest === null || Object.values(digest).some((v) => typeof v !== 'string'))
      refuse(what, `statement subject[${i}] has no digest map`);
  }
  return o as unknown as InTotoStatement;
}

/**
 * Whether a subject of the statement carries this digest (`sha256:<hex>`). Hex is compared
 * in lowercase, as in-toto requires; other algorithms of the same subject are ignored.
 */
export function statementCovers(statement: InTotoStatement, digest: string): boolean {
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1).toLowerCase();
  return statement.subject.some((s) => s.digest[algorithm]?.toLowerCase() === hex);
}
