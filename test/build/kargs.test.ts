import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kargsFor, parseKargsFile } from '../../src/build/kargs.js';

test('kargs.d: kargs and match-architectures parse', () => {
  assert.deepEqual(parseKargsFile('kargs = ["console=ttyS0,115200", "quiet"]\n', 'a.toml'), { kargs: ['console=ttyS0,115200', 'quiet'] });
  assert.deepEqual(parseKargsFile('kargs = []\nmatch-architectures = ["x86_64", "aarch64"]\n', 'b.toml'), { kargs: [], matchArchitectures: ['x86_64', 'aarch64'] });
});

test('kargs.d: bad files are refused with the file named', () => {
  assert.throws(() => parseKargsFile('kargs = [', '/usr/lib/bootc/kargs.d/x.toml'), /\/usr\/lib\/bootc\/kargs\.d\/x\.toml: not valid TOML/);
  assert.throws(() => parseKargsFile('kargs = "quiet"', 'x.toml'), /x\.toml: "kargs" must be an array of strings/);
  assert.throws(() => parseKargsFile('kargs = [1]', 'x.toml'), /array of strings/);
  assert.throws(() => parseKargsFile('match-architectures = ["x86_64"]', 'x.toml'), /missing "kargs"/);
  assert.throws(() => parseKargsFile('kargs = []\nkarg = ["x"]', 'x.toml'), /unknown key "karg"/);
  assert.throws(() => parseKargsFile('kargs = ["a b"]', 'x.toml'), /whitespace/);
  assert.throws(() => parseKargsFile('kargs = []\nmatch-architectures = "x86_64"', 'x.toml'), /match-architectures/);
});

test('kargs.d: files apply in name order, filtered by architecture', () => {
  const files = [
    { name: '20-arm.toml', text: 'kargs = ["arm=1"]\nmatch-architectures = ["aarch64"]' },
    { name: '10-console.toml', text: 'kargs = ["console=ttyS0"]' },
    { name: '30-x86.toml', text: 'kargs = ["x86=1"]\nmatch-architectures = ["x86_64"]' },
    { name: 'README', text: 'not toml' },
  ];
  assert.deepEqual(kargsFor(files, 'x86_64'), ['console=ttyS0', 'x86=1']);
  assert.deepEqual(kargsFor(files, 'aarch64'), ['console=ttyS0', 'arm=1']);
});
