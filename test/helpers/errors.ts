import { expect } from 'vitest';
import { isCleaveError } from '../../src/errors.js';

/** Runs f, expecting a CleaveError with `code` whose message matches `re`. */
export function expectError(f: () => unknown, code: string, re: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(isCleaveError(err), `expected a CleaveError, got ${String(err)}`).toBe(true);
  if (isCleaveError(err)) {
    expect(err.code).toBe(code);
    expect(err.message).toMatch(re);
  }
}
