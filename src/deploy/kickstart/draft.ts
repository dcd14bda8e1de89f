import { BasaltError } from '../../oci/errors.js';
import type { Kickstart, OstreeContainer } from './types.js';

/** What the parser accumulates; `finishKickstart` checks it whole. */
export interface Draft extends Omit<Kickstart, 'ostreecontainer'> {
  ostreecontainer?: OstreeContainer;
  /** Single-use directives already seen, with their line. */
  seen: Map<string, number>;
}

export function newDraft(source: string): Draft {
  return { source, parts: [], users: [], sshkeys: [], networks: [], services: { enabled: [], disabled: [] }, kargs: [], scripts: [], warnings: [], seen: new Map() };
}

/** Anaconda lets a later line override an earlier one; basalt refuses, since one of the two is a mistake. */
export function once(draft: Draft, key: string, where: string, line: number): void {
  const first = draft.seen.get(key);
  if (first !== undefined) throw new BasaltError('invalid', `${where}: ${key} is given twice (first at line ${first})`, { hint: 'keep one of them' });
  draft.seen.set(key, line);
}

export function invalid(where: string, message: string, hint?: string): BasaltError {
  return new BasaltError('invalid', `${where}: ${message}`, hint === undefined ? undefined : { hint });
}
