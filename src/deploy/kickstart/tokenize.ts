import { BasaltError } from '../../oci/errors.js';

/**
 * Splits one kickstart line as a POSIX shell would (Anaconda uses shlex): whitespace separates
 * words, '…' is literal, "…" honours \" \\ \$ \`, a backslash outside quotes escapes the next
 * character, and # at the start of a word begins a comment.
 */
export function tokenizeLine(text: string, where: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t' || c === '\r') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else if (c === '#' && !inWord) {
      break;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new BasaltError('invalid', `${where}: unterminated single quote`, { hint: 'close the quote on the same line' });
      word += text.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      let closed = false;
      while (i < text.length) {
        const d = text[i] as string;
        if (d === '"') {
          closed = true;
          i++;
          break;
        }
        if (d === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1] as string)) {
          word += text[i + 1];
          i += 2;
        } else {
          word += d;
          i++;
        }
      }
      if (!closed) throw new BasaltError('invalid', `${where}: unterminated double quote`, { hint: 'close the quote on the same line' });
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 >= text.length) throw new BasaltError('invalid', `${where}: a backslash ends the line (kickstart lines do not continue)`, { hint: 'put the whole directive on one line' });
      word += text[i + 1];
      inWord = true;
      i += 2;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}
