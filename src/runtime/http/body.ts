/**
 * Reads an inference request's body into one buffer whose binary tensor data start 8-byte aligned, so the
 * Open Inference Protocol parser can make typed-array views over it instead of copying each tensor
 * (express.raw concatenates the socket's chunks into a buffer at offset 0, which puts the binary part at
 * the JSON header's length: rarely a multiple of 4). Bodies with a Content-Encoding or without a
 * Content-Length (chunked) go through express.raw, which inflates and streams them.
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { CleaveError } from '../../errors.js';

/** Alignment of the binary part: enough for every dtype the protocol carries (FP64, INT64). */
const ALIGN = 8;

export function inferBody(limit: number, headerLengthField: string): RequestHandler {
  const fallback = express.raw({ type: () => true, limit });
  return (req: Request, res: Response, next: NextFunction): void => {
    const encoding = req.headers['content-encoding'];
    const declared = req.headers['content-length'];
    if ((encoding !== undefined && encoding !== 'identity') || declared === undefined) return fallback(req, res, next);
    // Node's parser has already refused a malformed or repeated Content-Length, so this is a number.
    const length = Number(declared);
    if (length > limit) {
      req.resume(); // let the unread body drain so the connection stays usable
      return next(new CleaveError('E_TOO_LARGE', `request body is larger than the ${limit} byte limit`));
    }
    const jsonLength = Number(req.get(headerLengthField));
    const pad =
      Number.isSafeInteger(jsonLength) && jsonLength >= 0 && jsonLength <= length
        ? (ALIGN - (jsonLength % ALIGN)) % ALIGN
        : 0;
    const body = Buffer.from(new ArrayBuffer(length + pad), pad, length);
    let at = 0;
    let done = false;
    const finish = (e?: CleaveError): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      if (e) return next(e);
      req.body = body;
      next();
    };
    const onData = (chunk: Buffer): void => {
      // The parser never delivers past Content-Length; the check keeps a broken peer from writing out of range.
      if (at + chunk.length > length)
        return finish(new CleaveError('E_BAD_INPUT', `request body is longer than its Content-Length ${length}`));
      chunk.copy(body, at);
      at += chunk.length;
    };
    // Each error is built only when it is the outcome: every request's 'close' comes after its 'end', and a
    // CleaveError captures a stack trace (~20 us a request, measured in a CPU profile of the gateway).
    const onEnd = (): void =>
      finish(
        at === length ? undefined : new CleaveError('E_BAD_INPUT', `request body ended after ${at} of ${length} bytes`),
      );
    // Stays attached after the body is read: an 'error' with no listener would throw.
    const onError = (e: Error): void => {
      if (!done) finish(new CleaveError('E_BAD_INPUT', `request body could not be read: ${e.message}`));
    };
    // Removed by finish, so it only runs while the body is unread.
    const onClose = (): void =>
      finish(new CleaveError('E_BAD_INPUT', `request closed after ${at} of ${length} body bytes`));
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    req.once('close', onClose);
  };
}
