import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseKickstart } from '../../../src/deploy/kickstart/index.js';
import { isBasaltError } from '../../../src/oci/errors.js';

/** The kickstart parser: every directive of the subset, Anaconda's quoting and option forms, and errors naming file:line. */

const FULL = `# a full kickstart
text
ostreecontainer --url=registry.lan:5000/os/base:1 --transport registry --stateroot=fleet --no-signature-verification
clearpart --all --initlabel --disklabel=gpt --drives=vda,vdb
ignoredisk --only-use=vda
reqpart --add-boot
part /boot/efi --size=600 --fstype=efi --ondisk=vda
part / --grow --size 4096 --fstype xfs --ondisk vda
user --name=alice --groups=wheel,sudo --password='pa ss"word' --plaintext
user --name bob --password="$6$salt$hash" --iscrypted
rootpw --iscrypted $6$abc$def   # a comment after the value
sshkey --username=alice "ssh-ed25519 AAAAC3Nza alice@laptop"
sshkey --username root 'ssh-rsa AAAAB3 root@admin'
network --bootproto=dhcp --device=enp1s0 --activate --hostname=node1.lan
network --bootproto dhcp
services --enabled=sshd,chronyd --disabled cups
services --enabled=basalt-health.service
firewall --enabled --service=ssh
timezone Europe/Paris --utc
lang en_US.UTF-8
keyboard --vckeymap=de --xlayouts=de,us
bootloader --append="console=ttyS0,115200 quiet" --location=mbr
%pre --interpreter=/bin/bash --erroronfail
echo "pre # not a comment"
%end
%post --nochroot
cp /tmp/x /mnt/sysimage/etc/x
%end
%post --interpreter /usr/bin/python3
print("hi")
%end
poweroff
`;

function refused(text: string, re: RegExp): void {
  assert.throws(() => parseKickstart(text, 'ks.cfg'), (e: unknown) => {
    assert.ok(isBasaltError(e, 'invalid'), String(e));
    assert.match(e.message, re);
    return true;
  });
}

const MIN = 'ostreecontainer --url=r.lan/os:1\npart / --grow\n';

test('every directive of the subset parses, with quoting and both option forms', () => {
  const ks = parseKickstart(FULL, 'ks.cfg');
  assert.deepEqual(ks.ostreecontainer, { url: 'registry.lan:5000/os/base:1', transport: 'registry', stateroot: 'fleet', verifySignatures: false });
  assert.deepEqual(ks.clearpart, { all: true, initlabel: true, disklabel: 'gpt', drives: ['vda', 'vdb'] });
  assert.deepEqual(ks.onlyUse, ['vda']);
  assert.equal(ks.reqpartAddBoot, true);
  assert.deepEqual(ks.parts, [
    { mountpoint: '/boot/efi', sizeMiB: 600, grow: false, fstype: 'efi', ondisk: 'vda', line: 7 },
    { mountpoint: '/', sizeMiB: 4096, grow: true, fstype: 'xfs', ondisk: 'vda', line: 8 },
  ]);
  assert.deepEqual(ks.users, [
    { name: 'alice', groups: ['wheel', 'sudo'], password: 'pa ss"word', crypted: false, line: 9 },
    { name: 'bob', groups: [], password: '$6$salt$hash', crypted: true, line: 10 },
  ]);
  assert.deepEqual(ks.rootpw, { password: '$6$abc$def', crypted: true, lock: false });
  assert.deepEqual(ks.sshkeys, [
    { username: 'alice', key: 'ssh-ed25519 AAAAC3Nza alice@laptop', line: 12 },
    { username: 'root', key: 'ssh-rsa AAAAB3 root@admin', line: 13 },
  ]);
  assert.deepEqual(ks.networks, [{ device: 'enp1s0', dhcp: true, activate: true }, { dhcp: true, activate: false }]);
  assert.equal(ks.hostname, 'node1.lan');
  assert.deepEqual(ks.services, { enabled: ['sshd', 'chronyd', 'basalt-health.service'], disabled: ['cups'] });
  assert.deepEqual(ks.timezone, { zone: 'Europe/Paris', utc: true });
  assert.equal(ks.lang, 'en_US.UTF-8');
  assert.deepEqual(ks.keyboard, { keymap: 'de', xlayouts: ['de', 'us'] });
  assert.deepEqual(ks.kargs, ['console=ttyS0,115200', 'quiet']);
  assert.equal(ks.scripts.length, 3);
  assert.deepEqual(ks.scripts[0], { kind: 'pre', interpreter: '/bin/bash', nochroot: false, errorOnFail: true, body: 'echo "pre # not a comment"\n', line: 23 });
  assert.deepEqual({ ...ks.scripts[1], body: undefined }, { kind: 'post', interpreter: '/bin/sh', nochroot: true, errorOnFail: false, body: undefined, line: 26 });
  assert.equal(ks.scripts[2]?.interpreter, '/usr/bin/python3');
  assert.equal(ks.finish, 'poweroff');
  const warned = ks.warnings.map((w) => w.line);
  assert.deepEqual(warned, [2, 6, 14, 18, 21, 22], JSON.stringify(ks.warnings));
});

test('defaults: registry transport, stateroot default, signatures verified, ext4, no finish action', () => {
  const ks = parseKickstart(`${MIN}rootpw --lock\n`, 'ks.cfg');
  assert.deepEqual(ks.ostreecontainer, { url: 'r.lan/os:1', transport: 'registry', stateroot: 'default', verifySignatures: true });
  assert.deepEqual(ks.parts, [{ mountpoint: '/', grow: true, fstype: 'ext4', line: 2 }]);
  assert.deepEqual(ks.rootpw, { crypted: false, lock: true });
  assert.equal(ks.finish, undefined);
  assert.deepEqual(ks.warnings, []);
});

test('unsupported directives, sections and options are errors naming file:line', () => {
  refused(`${MIN}autopart\n`, /^ks\.cfg:3: autopart is not a kickstart directive basalt supports/);
  refused(`${MIN}\n%packages\n@core\n%end\n`, /^ks\.cfg:4: section %packages is not supported/);
  refused(`${MIN}user --name=a --shell=/bin/zsh\n`, /^ks\.cfg:3: user --shell is not supported by basalt/);
  refused(`${MIN}network --bootproto=static\n`, /^ks\.cfg:3: network --bootproto static is not supported/);
  refused(`${MIN}part /home --size=100\n`, /^ks\.cfg:3: part \/home is not supported/);
  refused(`${MIN}%pre --nochroot\n%end\n`, /^ks\.cfg:3: %pre --nochroot is not supported/);
  refused(`${MIN}%post --log=/tmp/x\n%end\n`, /^ks\.cfg:3: %post --log is not supported/);
  refused(`${MIN}ostreecontainer --url=x --transport=dir\n`, /^ks\.cfg:3: ostreecontainer is given twice \(first at line 1\)/);
  refused('ostreecontainer --url=x --transport=dir\npart / --grow\n', /^ks\.cfg:1: ostreecontainer --transport dir is not one of/);
});

test('syntax errors name the line: quotes, missing values, %end, required directives, cross references', () => {
  refused(`${MIN}rootpw "unterminated\n`, /^ks\.cfg:3: unterminated double quote/);
  refused(`${MIN}rootpw 'unterminated\n`, /^ks\.cfg:3: unterminated single quote/);
  refused(`${MIN}user --name\n`, /^ks\.cfg:3: user --name needs a value/);
  refused(`${MIN}user --name --groups=x\n`, /^ks\.cfg:3: user --name needs a value/);
  refused(`${MIN}text --foo\n`, /^ks\.cfg:3: text --foo is not supported/);
  refused(`${MIN}reboot\npoweroff\n`, /^ks\.cfg:4: reboot\/poweroff\/halt is given twice \(first at line 3\)/);
  refused(`${MIN}%post\necho hi\n`, /^ks\.cfg:3: %post has no %end/);
  refused(`${MIN}%end\n`, /^ks\.cfg:3: %end without/);
  refused('part / --grow\n', /^ks\.cfg: no ostreecontainer line/);
  refused('ostreecontainer --url=x\n', /^ks\.cfg: no part \/ line/);
  refused('ostreecontainer --url=x\npart /\n', /^ks\.cfg:2: part \/ needs --size or --grow/);
  refused(`${MIN}sshkey --username=carol "ssh-ed25519 AAAA c"\n`, /^ks\.cfg:3: sshkey --username carol: no user carol/);
  refused(`${MIN}user --name=a --password=plain --iscrypted\n`, /^ks\.cfg:3: user --iscrypted: the password is not a crypt/);
  refused(`${MIN}services --enabled=a --disabled=a\n`, /^ks\.cfg:3: services: a is both enabled and disabled/);
  refused(`${MIN}part /boot/efi --size=0\n`, /^ks\.cfg:3: part --size 0 is not a positive number/);
  refused(`${MIN}part /boot/efi --size=100 --ondisk=vdb\npart / --grow --ondisk=vda\n`, /part \/ is given twice/);
  refused('ostreecontainer --url=x\npart / --grow --ondisk=vda\npart /boot/efi --size=100 --ondisk=vdb\n', /^ks\.cfg: part --ondisk names several disks \(vda, vdb\)/);
  refused(`${MIN}rootpw\n`, /^ks\.cfg:3: rootpw needs a password or --lock/);
  refused(`${MIN}network --hostname=a\nnetwork --hostname=b\n`, /^ks\.cfg:4: network --hostname is given twice/);
  refused(`${MIN}timezone\n`, /^ks\.cfg:3: timezone takes one zone name/);
});

test('quoting follows the shell: backslashes, adjacent quotes, # inside words', () => {
  const ks = parseKickstart(`${MIN}rootpw --plaintext a\\ b"c\\"d"'e f'g#h\n`, 'ks.cfg');
  assert.equal(ks.rootpw?.password, 'a bc"de fg#h');
});
