import { formatReference, parseReference, type ImageReference } from '../oci/reference.js';
import type { SignedIdentity } from './policy.js';

/**
 * Whether the docker reference a signature claims matches the image under a policy's
 * signedIdentity rule (containers/image's policy_reference_match.go). `image` is the
 * reference the image was named by; undefined for transports without one (layouts), where
 * only the rules that ignore the image's own name can match.
 */
export function identityMatches(rule: SignedIdentity, image: ImageReference | undefined, signedReference: string): boolean {
  let signed: ImageReference;
  try {
    signed = parseReference(signedReference);
  } catch {
    return false; // a signature claiming an unparseable identity matches nothing
  }
  const repoOf = (r: ImageReference): string => `${r.registry}/${r.repository}`;
  switch (rule.type) {
    case 'matchExact':
      return image !== undefined && isNamed(image) && formatReference(signed) === formatReference(image);
    case 'matchRepoDigestOrExact':
      return image !== undefined && repoDigestOrExact(image, signed);
    case 'matchRepository':
      return image !== undefined && repoOf(signed) === repoOf(image);
    case 'exactReference':
      return formatReference(signed) === formatReference(parseReference(rule.dockerReference));
    case 'exactRepository':
      return repoOf(signed) === repoOf(parseReference(rule.dockerRepository));
    case 'remapIdentity': {
      if (image === undefined) return false;
      const remapped = remap(image, rule.prefix, rule.signedPrefix);
      return repoDigestOrExact(remapped ?? image, signed);
    }
  }
}

function isNamed(r: ImageReference): boolean {
  return r.tag !== undefined || r.digest !== undefined;
}

/** An image named by digest accepts any signature for its repository; by tag, only that tag. */
function repoDigestOrExact(image: ImageReference, signed: ImageReference): boolean {
  if (image.digest !== undefined) return `${signed.registry}/${signed.repository}` === `${image.registry}/${image.repository}`;
  if (image.tag === undefined) return false;
  return formatReference(signed) === formatReference(image);
}

/**
 * Rewrites `prefix` to `signedPrefix` when the image's name starts with it at a component
 * boundary (the prefix is the whole name, or is followed by `/`, `:` or `@`).
 */
function remap(image: ImageReference, prefix: string, signedPrefix: string): ImageReference | undefined {
  const name = formatReference(image);
  if (!name.startsWith(prefix)) return undefined;
  const next = name.charAt(prefix.length);
  if (next !== '' && next !== '/' && next !== ':' && next !== '@') return undefined;
  // A host-only prefix may not be followed by a tag (host:port is a different host).
  if (!prefix.includes('/') && next === ':') return undefined;
  try {
    return parseReference(signedPrefix + name.slice(prefix.length));
  } catch {
    return undefined;
  }
}
