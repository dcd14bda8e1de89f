import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COSIGN_SIGNATURE_TYPE, createPayload, parsePayload, SIMPLE_SIGNING_TYPE } from '../../src/trust/payload.js';
import { isBasaltError } from '../../src/oci/errors.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const cosignOnly = [COSIGN_SIGNATURE_TYPE] as const;

function refused(text: string, pattern: RegExp, accept: readonly ('cosign container image signature' | 'atomic container signature')[] = cosignOnly): void {
  assert.throws(
    () => parsePayload(Buffer.from(text), accept, 'test payload'),
    (e: unknown) => isBasaltError(e, 'invalid') && pattern.test(e.message),
  );
}

test('a payload basalt creates parses back to the same claims', () => {
  const bytes = createPayload(COSIGN_SIGNATURE_TYPE, 'example.com/app:1', DIGEST, { creator: 'basalt test', timestamp: 1 });
  const p = parsePayload(bytes, cosignOnly, 'p');
  assert.equal(p.dockerReference, 'example.com/app:1');
  assert.equal(p.manifestDigest, DIGEST);
  assert.equal(p.type, COSIGN_SIGNATURE_TYPE);
  assert.deepEqual(p.optional, { creator: 'basalt test', timestamp: 1 });
});

test('cosign\'s own payload shape ("optional": null) is accepted', () => {
  const cosign = `{"critical":{"identity":{"docker-reference":"ghcr.io/x/y"},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"},"optional":null}`;
  const p = parsePayload(Buffer.from(cosign), cosignOnly, 'p');
  assert.equal(p.optional, null);
  assert.equal(p.dockerReference, 'ghcr.io/x/y');
});

test('an unknown critical field is refused', () => {
  const text = `{"critical":{"identity":{"docker-reference":"a.io/b:1"},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature","expires":"2030-01-01"},"optional":null}`;
  refused(text, /unknown field "expires" in critical/);
});

test('unknown fields inside identity or image, and at the top level, are refused', () => {
  refused(`{"critical":{"identity":{"docker-reference":"a.io/b:1","x":1},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"},"optional":null}`, /unknown field "x" in critical.identity/);
  refused(`{"critical":{"identity":{"docker-reference":"a.io/b:1"},"image":{"docker-manifest-digest":"${DIGEST}","y":2},"type":"cosign container image signature"},"optional":null}`, /unknown field "y" in critical.image/);
  refused(`{"critical":{"identity":{"docker-reference":"a.io/b:1"},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"},"optional":null,"extra":true}`, /unknown field "extra"/);
});

test('missing fields, wrong types, a wrong signature type and duplicate keys are refused', () => {
  refused(`{"critical":{"identity":{"docker-reference":"a.io/b:1"},"type":"cosign container image signature"},"optional":null}`, /critical lacks "image"/);
  refused(`{"critical":{"identity":{"docker-reference":"a.io/b:1"},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"}}`, /lacks "optional"/);
  refused(`{"critical":{"identity":{"docker-reference":7},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"},"optional":null}`, /docker-reference" is not a string/);
  refused(`{"critical":{"identity":{"docker-reference":"a.io/b:1"},"image":{"docker-manifest-digest":"sha256:xyz"},"type":"cosign container image signature"},"optional":null}`, /is not a digest/);
  refused(`{"critical":{"identity":{"docker-reference":"a.io/b:1"},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"atomic container signature"},"optional":null}`, /signature type "atomic container signature"/);
  // Two parsers could disagree on which identity counts: refused outright.
  refused(`{"critical":{"identity":{"docker-reference":"a.io/b:1","docker-reference":"evil.io/b:1"},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"},"optional":null}`, /duplicate key "docker-reference"/);
  refused('not json', /not JSON/);
});

test('simple-signing payloads carry the atomic type', () => {
  const bytes = createPayload(SIMPLE_SIGNING_TYPE, 'a.io/b:1', DIGEST, {});
  assert.equal(parsePayload(bytes, [SIMPLE_SIGNING_TYPE], 'p').type, SIMPLE_SIGNING_TYPE);
  refused(bytes.toString(), /is not "cosign container image signature"/);
});

test('strings containing braces, commas and escaped quotes do not confuse the duplicate-key check', () => {
  const text = `{"critical":{"identity":{"docker-reference":"a.io/b:1"},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"},"optional":{"note":"a \\"q\\", {x}, [y]","list":[{"k":1},{"k":2}]}}`;
  const p = parsePayload(Buffer.from(text), cosignOnly, 'p');
  assert.deepEqual(p.optional?.list, [{ k: 1 }, { k: 2 }]);
});
