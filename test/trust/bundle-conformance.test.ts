import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isBasaltError } from '../../src/oci/errors.js';
import { verifyBundle, type BundleVerificationPolicy } from '../../src/trust/bundle/index.js';
import { SHARED } from '../harness/tools.js';

/**
 * The sigstore-conformance `bundle-verify` vectors (sigstore/sigstore-conformance, Apache-2.0,
 * read in place from shared/fixtures): one test per case directory, found by listing the
 * directory. Names ending `_fail` must be refused, the others accepted.
 */
const CASES = join(SHARED, 'fixtures', 'sigstore-conformance', 'bundle-verify');
// The defaults the conformance suite's README gives for cases without identity/issuer files.
const DEFAULT_IDENTITY = 'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main';
const DEFAULT_ISSUER = 'https://token.actions.githubusercontent.com';

/**
 * Cases that do not behave as their name says, each with why and the error it is asserted to
 * fail with today, so this list stays honest: when one starts working (or fails
 * differently), its test fails and the entry must be reviewed. (Rekor v2 bundles, which
 * @sigstore/verify 2.x cannot check, are checked by basalt's rekor-v2.ts and are not gaps.)
 */
const KNOWN_GAPS: Record<string, { reason: string; error: RegExp }> = {
  'managed-key-happy-path': {
    reason:
      'carries an RFC 3161 timestamp from the public-good TSA, which the trusted root shipped in @sigstore/tuf 3.1.1 (seeds.json, the offline default) does not list yet; with a current public-good trusted_root.json it would verify',
    error: /timestamps do not verify \(timestamp could not be verified\)/,
  },
};

function optional(dir: string, file: string): Buffer | undefined {
  const path = join(dir, file);
  return existsSync(path) ? readFileSync(path) : undefined;
}

/** The policy a case asks for: its key, or its (or the default) identity; its root if it has one. */
function policyFor(dir: string): BundleVerificationPolicy {
  const key = optional(dir, 'key.pub');
  const root = optional(dir, 'trusted_root.json');
  const policy: BundleVerificationPolicy = key
    ? { publicKeys: [key] }
    : {
        identity: {
          subject: optional(dir, 'identity')?.toString('utf8').trim() ?? DEFAULT_IDENTITY,
          issuer: optional(dir, 'issuer')?.toString('utf8').trim() ?? DEFAULT_ISSUER,
        },
      };
  if (root) policy.trustedRoot = root;
  return policy;
}

const caseNames = readdirSync(CASES, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();
const outcome = { passedAsNamed: 0, knownGaps: 0 };

describe('sigstore-conformance bundle-verify vectors', () => {
  it('finds the case directories, each with a bundle, and a known-gap list naming only real cases', () => {
    assert.ok(caseNames.length >= 60, `only ${caseNames.length} cases under ${CASES}`);
    for (const name of caseNames) assert.ok(existsSync(join(CASES, name, 'bundle.sigstore.json')), `${name} has no bundle.sigstore.json`);
    for (const name of Object.keys(KNOWN_GAPS)) assert.ok(caseNames.includes(name), `known gap ${name} is not a case`);
  });

  for (const name of caseNames) {
    const dir = join(CASES, name);
    const mustFail = name.endsWith('_fail');
    const gap = KNOWN_GAPS[name];
    const title = gap ? `${name} (known gap, still fails as recorded: ${gap.reason.slice(0, 60)}...)` : `${name} ${mustFail ? 'is refused' : 'verifies'}`;
    it(title, async () => {
      const bundle = readFileSync(join(dir, 'bundle.sigstore.json'));
      const artifact = optional(dir, 'artifact') ?? readFileSync(join(CASES, 'a.txt'));
      const policy = policyFor(dir);
      const attempt = verifyBundle(bundle, { data: artifact }, policy, name);
      if (gap) {
        await assert.rejects(attempt, (e: unknown) => {
          assert.ok(isBasaltError(e, 'policy'), `expected a policy error, got ${String(e)}`);
          assert.match(e.message, gap.error);
          return true;
        });
        outcome.knownGaps++;
      } else if (mustFail) {
        await assert.rejects(attempt, (e: unknown) => {
          // A refused bundle is a policy failure; a broken trust root or key is named as such.
          assert.ok(isBasaltError(e) && ['policy', 'invalid', 'usage'].includes(e.kind), `expected a BasaltError, got ${String(e)}`);
          assert.ok(e.message.startsWith(`${name}:`) || e.kind !== 'policy', `the message names the bundle: ${e.message}`);
          return true;
        });
        outcome.passedAsNamed++;
      } else {
        const verified = await attempt;
        if (policy.publicKeys) assert.deepEqual(verified.signer, { kind: 'public-key', keyIndex: 0 });
        else assert.deepEqual(verified.signer, { kind: 'certificate', subject: policy.identity?.subject, issuer: policy.identity?.issuer });
        assert.ok(verified.transparencyLogEntries >= 1);
        outcome.passedAsNamed++;
      }
    });
  }

  after(() => {
    // Printed so the count is visible in every run, not only in a failure.
    console.log(
      `# sigstore-conformance bundle-verify: ${caseNames.length} cases, ${outcome.passedAsNamed} behave as named, ${outcome.knownGaps} known gaps ` +
        `(${Object.keys(KNOWN_GAPS).filter((n) => !n.endsWith('_fail')).length} that must pass but fail, ${Object.keys(KNOWN_GAPS).filter((n) => n.endsWith('_fail')).length} that fail for the gap's reason)`,
    );
  });
});
