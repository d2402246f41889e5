const MiB = 1024 * 1024;

const fill = (unit: string, length = MiB): string => unit.repeat(Math.ceil(length / unit.length)).slice(0, length);

/**
 * Megabyte strings shaped to make a backtracking pattern or a naive parser go quadratic: long runs of the
 * characters validators split, trim or nest on, each ending in a character that makes the match fail late.
 */
export const ADVERSARIAL_STRINGS: readonly { name: string; value: string }[] = [
  { name: 'spaces then !', value: `${fill(' ')}!` },
  { name: 'spaces in base64', value: `QUJD${fill(' ')}=!` },
  { name: 'tabs and newlines', value: `${fill('\t\r\n')}x` },
  { name: "a's", value: fill('a') },
  { name: "a's then @", value: `${fill('a')}@` },
  { name: "@'s", value: fill('@') },
  { name: 'dots', value: fill('.') },
  { name: 'a. labels', value: `${fill('a.')}-` },
  { name: 'long label', value: `ada@${fill('b')}.com` },
  { name: 'nested <', value: fill('<') },
  { name: '<a@ repeated', value: fill('<a@') },
  { name: 'quotes', value: fill('"') },
  { name: 'parentheses', value: fill('(') },
  { name: 'backslashes', value: fill('\\') },
  { name: 'commas', value: fill('a,') },
  { name: 'equals', value: fill('=') },
  { name: 'braces', value: fill('{') },
  { name: 'open tags', value: fill('{a.') },
  { name: 'unclosed sections', value: fill('{?a}') },
  { name: 'closing tags', value: fill('{/a}') },
  { name: 'distinct variables', value: Array.from({ length: 100_000 }, (_, i) => `{v${i}}`).join('') },
  { name: 'markdown emphasis', value: fill('*_') },
  { name: 'markdown links', value: fill('[a](') },
  { name: 'markdown backticks', value: fill('`') },
  { name: 'html-ish', value: fill('<a ') },
  { name: 'surrogate halves', value: fill('\uD800') },
  { name: 'zero-width', value: fill('\u200B') },
  { name: 'fullwidth dots', value: fill('\uFF0E\u3002') },
];
