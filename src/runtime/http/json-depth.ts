/**
 * A bound on JSON nesting, checked on the text before it is parsed: `JSON.parse` itself copes with deep
 * nesting, but every recursive walk after it (validation, `JSON.stringify` in an error message, a structured
 * clone to a worker) overflows the stack somewhere past a few thousand levels, and no request or control body
 * needs more than a handful.
 */
import { CleaveError } from '../../errors.js';

/** Deepest nesting of arrays and objects accepted in a request or control body. */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * The byte offset where `text` (UTF-8 bytes or a string) first nests deeper than `max`, or -1. Strings are
 * skipped (a bracket inside one does not count); malformed JSON is left for the parser to report.
 */
export function depthExceededAt(text: Uint8Array | string, max = MAX_JSON_DEPTH): number {
  const n = text.length;
  const at = typeof text === 'string' ? (i: number) => text.charCodeAt(i) : (i: number) => text[i];
  let depth = 0;
  let inString = false;
  for (let i = 0; i < n; i++) {
    const c = at(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) return i;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return -1;
}

function tooDeep(what: string, max: number, i: number): string {
  return `${what}: JSON nested deeper than ${max} levels (at offset ${i})`;
}

/** Throws E_BAD_INPUT naming the position when `text` nests deeper than `max`. */
export function checkJsonDepth(text: Uint8Array | string, what: string, max = MAX_JSON_DEPTH): void {
  const i = depthExceededAt(text, max);
  if (i >= 0) throw new CleaveError('E_BAD_INPUT', tooDeep(what, max, i));
}

/**
 * For express.json's `verify`: the same check, thrown as the 400 body-parser passes on (it re-labels what
 * `verify` throws with the error's own status, 403 when it has none).
 */
export function verifyJsonDepth(_req: unknown, _res: unknown, buf: Buffer): void {
  const i = depthExceededAt(buf);
  if (i >= 0)
    throw Object.assign(new Error(tooDeep('request body', MAX_JSON_DEPTH, i)), {
      status: 400,
      type: 'entity.too.deep',
    });
}
