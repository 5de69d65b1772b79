/** Hand-made frames for the frame decoder's tests: any header object, any payload, and the check of a refusal. */
import { Packr } from 'msgpackr';
import { ALIGN, PREFIX_BYTES } from '../../src/transport/frame.js';
import { expectError } from './errors.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/** A frame with an arbitrary header object and payload, for malformed cases. */
export function rawFrame(
  header: unknown,
  payload: Buffer = Buffer.alloc(0),
  opts: { magic?: string; version?: number } = {},
): Buffer {
  const h = packr.pack(header);
  const prefix = Buffer.alloc(PREFIX_BYTES);
  prefix.write(opts.magic ?? 'CLV', 0, 'latin1');
  prefix[3] = opts.version ?? 1;
  prefix.writeUInt32LE(h.length, 4);
  const start = PREFIX_BYTES + h.length;
  const pad = payload.length ? (ALIGN - (start % ALIGN)) % ALIGN : 0;
  return Buffer.concat([prefix, h, Buffer.alloc(pad), payload]);
}

/** Runs `fn`, expecting the decoder's refusal: a CleaveError with `code` whose message matches `re`. */
export function badFrame(fn: () => unknown, re: RegExp, code = 'E_BAD_FRAME'): void {
  expectError(fn, code, re);
}
