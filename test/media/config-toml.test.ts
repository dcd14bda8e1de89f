import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseBibConfig, rootMinSize } from '../../src/media/config-toml.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { SHARED } from '../harness/tools.js';

test('the appliance example config.toml parses into users and kernel arguments', () => {
  const file = join(SHARED, 'examples/appliance/config.toml');
  const config = parseBibConfig(readFileSync(file, 'utf8'), file);
  assert.equal(config.users.length, 1);
  assert.equal(config.users[0]?.name, 'alice');
  assert.equal(config.users[0]?.password, 'bob');
  assert.deepEqual(config.users[0]?.groups, ['sudo']);
  assert.match(config.users[0]?.key ?? '', /^ssh-ed25519 /);
  assert.equal(config.kernelAppend, 'console=ttyS0');
  assert.deepEqual(config.filesystems, []);
});

test('filesystem minsize accepts bytes and unit strings; hostname and kickstart are read', () => {
  const config = parseBibConfig(
    `[customizations]\nhostname = "box.example.com"\n[[customizations.filesystem]]\nmountpoint = "/"\nminsize = "10 GiB"\n[[customizations.filesystem]]\nmountpoint = "/var/data"\nminsize = 2000000000\n[customizations.installer.kickstart]\ncontents = "text"\n`,
    'c.toml',
  );
  assert.equal(rootMinSize(config), 10 * 1024 ** 3);
  assert.equal(config.filesystems[1]?.minsize, 2e9);
  assert.equal(config.hostname, 'box.example.com');
  assert.equal(config.kickstart, 'text');
  assert.equal(parseBibConfig('[[customizations.filesystem]]\nmountpoint = "/"\nminsize = "20GB"\n', 'c').filesystems[0]?.minsize, 20e9);
});

const refused = (text: string, re: RegExp): void =>
  assert.throws(() => parseBibConfig(text, 'bad.toml'), (e) => isBasaltError(e, 'invalid') && e.message.startsWith('bad.toml') && re.test(e.message), `expected ${re} for:\n${text}`);

test('unknown keys are refused with their path; bad values with the reason', () => {
  refused('[customizations.kernel]\nappend = "x"\nappnd = "y"\n', /customizations\.kernel\.appnd is not a known key/);
  refused('[[customizations.user]]\nname = "a"\nshel = "/bin/sh"\n', /customizations\.user\[0\]\.shel is not a known key/);
  refused('[customization]\n', /\(top level\)\.customization is not a known key/);
  refused('[[customizations.user]]\npassword = "x"\n', /customizations\.user\[0\] has no name/);
  refused('[[customizations.user]]\nname = "Bad Name"\n', /not a valid user name/);
  refused('[[customizations.user]]\nname = "a"\ngroups = "wheel"\n', /groups must be an array/);
  refused('[[customizations.user]]\nname = "a"\nkey = "hello"\n', /key is not an SSH public key/);
  refused('[[customizations.filesystem]]\nmountpoint = "/"\nminsize = "ten gigs"\n', /minsize: "ten gigs" is not a size/);
  refused('[[customizations.filesystem]]\nmountpoint = "var"\nminsize = 1\n', /not a clean absolute path/);
  refused('[[customizations.user]]\nname = "a"\n[[customizations.user]]\nname = "a"\n', /repeats user "a"/);
  refused('customizations = [\n', /bad\.toml:\d+:\d+: not valid TOML/);
});
