/**
 * The ONNX Runtime session options every Cleave session uses, in process (CLI tools) and in the executor's
 * workers alike, so that a segment served by a host computes exactly what `verify` checked.
 */
import type ort from 'onnxruntime-node';

/**
 * ORT rewrite rules that change results, disabled in every session. `Pad_Fusion` folds a zero-valued Pad
 * into a following MaxPool's `pads`, but MaxPool pads with -inf, so windows of negative values come out
 * wrong (Keras ResNetV2's ZeroPadding2D + MaxPooling2D on the un-activated stem conv); a split between the
 * Pad and the MaxPool would then disagree with the whole model.
 */
const ORT_DISABLED_OPTIMIZERS = 'Pad_Fusion';

/** `intraOpThreads` 0 lets ORT choose. */
export function ortSessionOptions(intraOpThreads: number): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    // ORT's own log goes to stderr; its errors reach callers as typed errors instead (4 = fatal only).
    logSeverityLevel: 4,
    extra: {
      // Spinning threads burn the cores other sessions (and the other tiers' processes) need; measured here,
      // sessions with spinning on slow each other down far more than spinning speeds any one of them up.
      session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } },
      optimization: { disable_specified_optimizers: ORT_DISABLED_OPTIMIZERS },
    },
  };
}
