/**
 * Scission's rule on the Keras architecture a zoo model mirrors: a split point is a layer boundary that
 * exactly one layer's output crosses. Zoo models carry their Keras layer graph as metadata, so `inspect`
 * can compare Scission's count with Cleave's cuts on the same architecture.
 */
import type { OnnxModel } from './model.js';

const KEY = 'cleave.keras_layers';

interface LayerRec {
  n: string;
  i: string[];
  o: string;
}

/** Layer boundaries (after layer 1 .. m-2, in Keras order) crossed by one tensor; undefined for non-zoo models. */
export function kerasSingleTensorSplits(model: OnnxModel): { layers: number; splits: number } | undefined {
  const raw = model.metadata(KEY);
  if (!raw) return undefined;
  const layers = JSON.parse(raw) as LayerRec[];
  const producer = new Map<string, number>();
  layers.forEach((l, k) => producer.set(l.o, k));
  // lastUse[j]: the last layer reading layer j's output (the final layer's output is the model output).
  const lastUse = layers.map(() => -1);
  layers.forEach((l, k) => {
    for (const t of l.i) {
      const j = producer.get(t);
      if (j !== undefined) lastUse[j] = Math.max(lastUse[j], k);
    }
  });
  lastUse[layers.length - 1] = layers.length;
  let splits = 0;
  // Boundary after layer b: outputs of layers j <= b read by a layer after b.
  for (let b = 1; b <= layers.length - 2; b++) {
    let live = 0;
    for (let j = 0; j <= b && live < 2; j++) if (lastUse[j] > b) live++;
    if (live === 1) splits++;
  }
  return { layers: layers.length, splits };
}
