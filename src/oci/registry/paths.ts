/** URL pieces of the distribution API. */

export const enc = encodeURIComponent;

/** `/v2/NAME` with each path component escaped. */
export function repoPathOf(repository: string): string {
  return `/v2/${repository.split('/').map(enc).join('/')}`;
}
