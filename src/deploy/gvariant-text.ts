import { BasaltError } from '../oci/errors.js';

/**
 * Reads the few GVariant text forms `ostree show --print-metadata-key` and `ostree ls -X`
 * print: strings ('…' or "…"), arrays of strings, bytestrings (b'…') and byte arrays
 * ([byte 0x01, …]), and xattr lists (a(ayay)). Writes string arrays for --add-metadata.
 */
export function parseGVariantString(text: string): string {
  const p = new Parser(text.trim());
  const value = p.string();
  p.end();
  return value;
}

export function parseGVariantStringArray(text: string): string[] {
  const p = new Parser(text.trim());
  p.skipTypeAnnotation();
  const out: string[] = [];
  p.expect('[');
  while (!p.eat(']')) {
    out.push(p.string());
    p.eat(',');
  }
  p.end();
  return out;
}

/** `[(b'user.x', [byte 0x01]), …]` or `@a(ayay) []` into name → value. */
export function parseGVariantXattrs(text: string): Map<string, Buffer> {
  const p = new Parser(text.trim());
  p.skipTypeAnnotation();
  const out = new Map<string, Buffer>();
  p.expect('[');
  while (!p.eat(']')) {
    p.expect('(');
    const name = p.bytes();
    p.expect(',');
    const value = p.bytes();
    p.expect(')');
    p.eat(',');
    // Attribute names are stored NUL-terminated.
    out.set(name.toString('utf8').replace(/\0$/, ''), value);
  }
  p.end();
  return out;
}

/** A string array in GVariant text, for `--add-metadata=KEY=VALUE`. */
export function formatGVariantStringArray(values: readonly string[]): string {
  return `@as [${values.map(quote).join(', ')}]`;
}

function quote(s: string): string {
  let out = "'";
  for (const ch of s) {
    const code = ch.codePointAt(0) as number;
    if (ch === "'" || ch === '\\') out += `\\${ch}`;
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}'`;
}

class Parser {
  private i = 0;
  constructor(private readonly s: string) {}

  private fail(why: string): never {
    throw new BasaltError('tool', `cannot read ostree's output "${this.s.slice(0, 200)}": ${why} at offset ${this.i}`);
  }

  private ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i] as string)) this.i++;
  }

  eat(token: string): boolean {
    this.ws();
    if (this.s.startsWith(token, this.i)) {
      this.i += token.length;
      return true;
    }
    return false;
  }

  expect(token: string): void {
    if (!this.eat(token)) this.fail(`expected "${token}"`);
  }

  end(): void {
    this.ws();
    if (this.i !== this.s.length) this.fail('unexpected text');
  }

  /** `@as `, `@a(ayay) `: a type annotation before an empty or typed value. */
  skipTypeAnnotation(): void {
    this.ws();
    if (this.s[this.i] === '@') {
      while (this.i < this.s.length && !/\s/.test(this.s[this.i] as string)) this.i++;
    }
  }

  string(): string {
    return this.quoted().toString('utf8');
  }

  bytes(): Buffer {
    this.ws();
    if (this.s.startsWith("b'", this.i) || this.s.startsWith('b"', this.i)) {
      this.i++;
      return this.quoted();
    }
    this.skipTypeAnnotation();
    this.expect('[');
    const out: number[] = [];
    while (!this.eat(']')) {
      this.eat('byte');
      this.ws();
      const m = /^(0x[0-9a-fA-F]+|\d+)/.exec(this.s.slice(this.i));
      if (!m) this.fail('expected a byte');
      out.push(Number(m[1]));
      this.i += m[1]!.length;
      this.eat(',');
    }
    return Buffer.from(out);
  }

  /** A '…' or "…" literal with GLib's escapes, as bytes (bytestrings may hold any byte). */
  private quoted(): Buffer {
    this.ws();
    const q = this.s[this.i];
    if (q !== "'" && q !== '"') this.fail('expected a quoted string');
    this.i++;
    const out: number[] = [];
    const push = (text: string): void => {
      out.push(...Buffer.from(text, 'utf8'));
    };
    for (;;) {
      if (this.i >= this.s.length) this.fail('unterminated string');
      const ch = this.s[this.i++] as string;
      if (ch === q) break;
      if (ch !== '\\') {
        push(ch);
        continue;
      }
      const e = this.s[this.i++] as string;
      const simple: Record<string, number> = { n: 10, t: 9, r: 13, a: 7, b: 8, f: 12, v: 11 };
      if (e in simple) out.push(simple[e] as number);
      else if (e === 'u' || e === 'U') {
        const len = e === 'u' ? 4 : 8;
        push(String.fromCodePoint(parseInt(this.s.slice(this.i, this.i + len), 16)));
        this.i += len;
      } else if (e === 'x') {
        const m = /^[0-9a-fA-F]{1,2}/.exec(this.s.slice(this.i)) as RegExpExecArray;
        out.push(parseInt(m[0], 16));
        this.i += m[0].length;
      } else if (/[0-7]/.test(e)) {
        const m = /^[0-7]{1,3}/.exec(this.s.slice(this.i - 1)) as RegExpExecArray;
        out.push(parseInt(m[0], 8) & 0xff);
        this.i += m[0].length - 1;
      } else push(e);
    }
    return Buffer.from(out);
  }
}
