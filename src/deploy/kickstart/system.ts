import { listValue, parseOptions } from './options.js';
import { invalid, once, type Draft } from './draft.js';

/** Users, passwords, keys, network, services and the system settings. */

const NAME = /^[a-z_][a-z0-9_-]*\$?$/;

export function user(d: Draft, words: string[], where: string, line: number): void {
  const o = parseOptions(words, { '--name': 'value', '--groups': 'value', '--password': 'value', '--plaintext': 'flag', '--iscrypted': 'flag' }, where, 'user');
  if (o.positional.length) throw invalid(where, `user takes no arguments besides options (got "${o.positional[0]}")`);
  const name = o.values.get('--name');
  if (!name) throw invalid(where, 'user needs --name');
  if (!NAME.test(name) || name.length > 32) throw invalid(where, `user --name "${name}" is not a valid user name`, 'lower-case letters, digits, _ and -, starting with a letter or _');
  if (name === 'root') throw invalid(where, 'user --name root: set root\'s password with rootpw');
  if (d.users.some((u) => u.name === name)) throw invalid(where, `user ${name} is given twice`);
  if (o.flags.has('--plaintext') && o.flags.has('--iscrypted')) throw invalid(where, 'user --plaintext and --iscrypted contradict each other');
  const password = o.values.get('--password');
  const crypted = o.flags.has('--iscrypted');
  if (crypted && password === undefined) throw invalid(where, 'user --iscrypted needs --password=HASH');
  if (crypted && password !== undefined && !password.startsWith('$')) throw invalid(where, 'user --iscrypted: the password is not a crypt(3) hash ($6$…, $y$…)', 'hash it with openssl passwd -6, or write --plaintext');
  const groups = listValue(o.values.get('--groups'));
  for (const g of groups) if (!NAME.test(g)) throw invalid(where, `user --groups: "${g}" is not a valid group name`);
  d.users.push({ name, groups, ...(password !== undefined ? { password } : {}), crypted, line });
}

export function rootpw(d: Draft, words: string[], where: string, line: number): void {
  once(d, 'rootpw', where, line);
  const o = parseOptions(words, { '--plaintext': 'flag', '--iscrypted': 'flag', '--lock': 'flag' }, where, 'rootpw');
  if (o.positional.length > 1) throw invalid(where, 'rootpw takes one password (quote it if it has spaces)');
  if (o.flags.has('--plaintext') && o.flags.has('--iscrypted')) throw invalid(where, 'rootpw --plaintext and --iscrypted contradict each other');
  const password = o.positional[0];
  const lock = o.flags.has('--lock');
  if (password === undefined && !lock) throw invalid(where, 'rootpw needs a password or --lock');
  const crypted = o.flags.has('--iscrypted');
  if (crypted && password !== undefined && !password.startsWith('$')) throw invalid(where, 'rootpw --iscrypted: the password is not a crypt(3) hash ($6$…, $y$…)');
  d.rootpw = { ...(password !== undefined ? { password } : {}), crypted, lock };
}

export function sshkey(d: Draft, words: string[], where: string, line: number): void {
  const o = parseOptions(words, { '--username': 'value' }, where, 'sshkey');
  const username = o.values.get('--username');
  if (!username) throw invalid(where, 'sshkey needs --username');
  if (o.positional.length !== 1) throw invalid(where, 'sshkey takes one key, in quotes', 'sshkey --username=alice "ssh-ed25519 AAAA… alice@laptop"');
  const key = o.positional[0] as string;
  if (!/^(ssh-|ecdsa-|sk-)\S+ \S+/.test(key)) throw invalid(where, `sshkey: "${key.slice(0, 40)}" is not an SSH public key`);
  d.sshkeys.push({ username, key, line });
}

export function network(d: Draft, words: string[], where: string, line: number): void {
  const o = parseOptions(words, { '--bootproto': 'value', '--device': 'value', '--activate': 'flag', '--hostname': 'value' }, where, 'network');
  if (o.positional.length) throw invalid(where, `network takes no arguments besides options (got "${o.positional[0]}")`);
  const proto = o.values.get('--bootproto');
  if (proto !== undefined && proto !== 'dhcp') throw invalid(where, `network --bootproto ${proto} is not supported`, 'basalt configures DHCP only (--bootproto=dhcp)');
  const hostname = o.values.get('--hostname');
  if (hostname !== undefined) {
    if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*$/.test(hostname)) throw invalid(where, `network --hostname "${hostname}" is not a valid host name`);
    once(d, 'network --hostname', where, line);
    d.hostname = hostname;
  }
  const device = o.values.get('--device');
  if (device !== undefined && !/^[A-Za-z0-9_.:-]+$/.test(device)) throw invalid(where, `network --device "${device}" is not an interface name or MAC address`);
  if (o.flags.has('--activate')) d.warnings.push({ line, message: 'network --activate has no effect: the installer\'s own network is already up' });
  if (proto === undefined && device === undefined) return;
  if (proto === undefined) throw invalid(where, 'network --device needs --bootproto=dhcp');
  d.networks.push({ ...(device !== undefined ? { device } : {}), dhcp: true, activate: o.flags.has('--activate') });
}

const UNIT = /^[A-Za-z0-9:_.@\\-]+$/;

export function services(d: Draft, words: string[], where: string): void {
  const o = parseOptions(words, { '--enabled': 'value', '--disabled': 'value' }, where, 'services');
  if (o.positional.length) throw invalid(where, `services takes no arguments besides options (got "${o.positional[0]}")`);
  const enabled = listValue(o.values.get('--enabled'));
  const disabled = listValue(o.values.get('--disabled'));
  if (!enabled.length && !disabled.length) throw invalid(where, 'services needs --enabled or --disabled');
  for (const s of [...enabled, ...disabled]) if (!UNIT.test(s)) throw invalid(where, `services: "${s}" is not a unit name`);
  const both = enabled.find((s) => disabled.includes(s) || d.services.disabled.includes(s)) ?? disabled.find((s) => d.services.enabled.includes(s));
  if (both) throw invalid(where, `services: ${both} is both enabled and disabled`);
  d.services.enabled.push(...enabled);
  d.services.disabled.push(...disabled);
}

export function firewall(d: Draft, words: string[], where: string, line: number): void {
  once(d, 'firewall', where, line);
  const o = parseOptions(words, { '--enabled': 'flag', '--disabled': 'flag', '--service': 'value', '--port': 'value', '--trust': 'value', '--use-system-defaults': 'flag' }, where, 'firewall', { '--enable': '--enabled', '--disable': '--disabled' });
  if (o.positional.length) throw invalid(where, `firewall takes no arguments besides options (got "${o.positional[0]}")`);
  d.warnings.push({ line, message: 'firewall has no effect: basalt does not configure a firewall; configure it in the image' });
}

export function timezone(d: Draft, words: string[], where: string, line: number): void {
  once(d, 'timezone', where, line);
  const o = parseOptions(words, { '--utc': 'flag' }, where, 'timezone', { '--isUtc': '--utc' });
  if (o.positional.length !== 1) throw invalid(where, 'timezone takes one zone name (e.g. Europe/Paris)');
  const zone = o.positional[0] as string;
  if (!/^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/.test(zone)) throw invalid(where, `timezone "${zone}" is not a zone name`);
  d.timezone = { zone, utc: o.flags.has('--utc') };
}

export function lang(d: Draft, words: string[], where: string, line: number): void {
  once(d, 'lang', where, line);
  const o = parseOptions(words, {}, where, 'lang');
  if (o.positional.length !== 1) throw invalid(where, 'lang takes one locale (e.g. en_US.UTF-8)');
  const locale = o.positional[0] as string;
  if (!/^[A-Za-z]{1,8}(_[A-Za-z0-9]+)?(\.[A-Za-z0-9-]+)?(@[A-Za-z0-9]+)?$/.test(locale)) throw invalid(where, `lang "${locale}" is not a locale name`);
  d.lang = locale;
}

export function keyboard(d: Draft, words: string[], where: string, line: number): void {
  once(d, 'keyboard', where, line);
  const o = parseOptions(words, { '--vckeymap': 'value', '--xlayouts': 'value' }, where, 'keyboard');
  if (o.positional.length > 1) throw invalid(where, 'keyboard takes one keymap');
  const keymap = o.values.get('--vckeymap') ?? o.positional[0];
  if (keymap !== undefined && !/^[A-Za-z0-9_.-]+$/.test(keymap)) throw invalid(where, `keyboard "${keymap}" is not a keymap name`);
  const xlayouts = listValue(o.values.get('--xlayouts'));
  if (keymap === undefined && xlayouts.length === 0) throw invalid(where, 'keyboard needs a keymap (keyboard us, or --vckeymap=us)');
  if (xlayouts.length) d.warnings.push({ line, message: 'keyboard --xlayouts has no effect: basalt writes the console keymap only' });
  d.keyboard = { ...(keymap !== undefined ? { keymap } : {}), xlayouts };
}

export function bootloader(d: Draft, words: string[], where: string, line: number): void {
  once(d, 'bootloader', where, line);
  const o = parseOptions(words, { '--append': 'value', '--location': 'value' }, where, 'bootloader');
  if (o.positional.length) throw invalid(where, `bootloader takes no arguments besides options (got "${o.positional[0]}")`);
  const location = o.values.get('--location');
  if (location !== undefined) d.warnings.push({ line, message: `bootloader --location=${location} has no effect: systemd-boot is always installed on the ESP` });
  const append = o.values.get('--append');
  if (append !== undefined) d.kargs = append.split(/\s+/).filter((a) => a !== '');
}

/** Directives that take no options: text, reboot, poweroff, halt. */
export function bare(d: Draft, directive: string, words: string[], where: string, line: number): void {
  parseOptions(words, {}, where, directive);
  if (words.length) throw invalid(where, `${directive} takes no arguments`);
  if (directive === 'text') {
    once(d, 'text', where, line);
    d.warnings.push({ line, message: 'text has no effect: basalt\'s installer is always non-interactive text' });
    return;
  }
  once(d, 'reboot/poweroff/halt', where, line);
  d.finish = directive as 'reboot' | 'poweroff' | 'halt';
}
