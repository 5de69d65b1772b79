/**
 * The `cleave` command as a user runs it: a child process on bin/cleave.mjs. Good input produces the
 * documented output; bad input produces one line on stderr naming the problem and its code, a non-zero
 * exit, and no stack trace.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OnnxModel } from '../src/graph/model.js';
import { resolveInputs } from '../src/graph/shapes.js';
import { makeFeeds } from '../src/runtime/local/ort-local.js';
import { expectClose } from './helpers/split.js';
import { runBytes, tinyModel, type Feeds } from './helpers/tiny-onnx.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'cleave.mjs');
const OCR = join(import.meta.dirname, '..', 'node_modules', '@gutenye', 'ocr-models', 'assets');
const CLS = join(OCR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
const DET = join(OCR, 'ch_PP-OCRv4_det_infer.onnx');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir = '';
let cache = '';
/** mobilenetv2-small, built by `cleave zoo build` in beforeAll. */
let zooFile = '';

function cleave(...args: string[]): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, CLEAVE_CACHE: cache };
  delete env.CLEAVE_DEBUG;
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env, cwd: dir, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A failure the way a user should see it: exit 2, nothing on stdout, one line `cleave CMD: ... [CODE]`. */
function expectCleanFailure(r: Run, cmd: string, message: RegExp, code: string): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr).toMatch(message);
  expect(r.stderr).toMatch(new RegExp(`^cleave ${cmd}: .* \\[${code}\\]\\n$`));
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).not.toMatch(/^\s+at .*:\d+:\d+\)?$/m);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cleave-cli-'));
  cache = join(dir, 'cache');
  const built = await cleave('zoo', 'build', 'mobilenetv2', '--small', '--out', join(dir, 'models'));
  expect(built.code, built.stderr).toBe(0);
  zooFile = join(dir, 'models', 'mobilenetv2-small.onnx');
  writeFileSync(join(dir, 'notes.onnx'), 'These are my notes, not a model.\nline two\n');
  const cls = readFileSync(CLS);
  writeFileSync(join(dir, 'half.onnx'), cls.subarray(0, cls.length >> 1));
  writeFileSync(
    join(dir, 'custom-op.onnx'),
    tinyModel({
      inputs: [{ name: 'x', dims: [1, 4] }],
      outputs: [{ name: 'y', dims: [1, 4] }],
      extraOpsets: [{ domain: 'com.example', version: 1 }],
      nodes: [
        { op: 'Relu', inputs: ['x'], outputs: ['a'] },
        { op: 'NoSuchOp', domain: 'com.example', inputs: ['a'], outputs: ['y'] },
      ],
    }),
  );
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('cleave --help', () => {
  it('lists the commands and exits 0', async () => {
    const r = await cleave('--help');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^usage: cleave COMMAND/m);
    for (const c of ['inspect', 'split', 'verify', 'zoo']) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
  });

  it('prints the usage and exits 2 without a command', async () => {
    const r = await cleave();
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/usage: cleave COMMAND/);
  });

  it.each(['inspect', 'split', 'verify', 'zoo'])('%s --help exits 0 with its usage', async (c) => {
    const r = await cleave(c, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^cleave ${c} `));
  });
});

describe('cleave inspect', () => {
  it('prints a model in text and in JSON with consistent counts', async () => {
    const [text, json] = await Promise.all([cleave('inspect', zooFile), cleave('inspect', zooFile, '--json')]);
    expect(text.code, text.stderr).toBe(0);
    expect(json.code, json.stderr).toBe(0);
    const j = JSON.parse(json.stdout);
    const model = OnnxModel.fromBytes(readFileSync(zooFile), zooFile);

    expect(j.inputs).toEqual([{ name: 'input', dtype: 'float32', dims: [1, 3, 64, 64], bytes: 3 * 64 * 64 * 4 }]);
    expect(j.outputs[0]).toMatchObject({ name: 'probs', dtype: 'float32' });
    expect(j.computeNodes).toBe(model.nodes.length);
    expect(j.nodes).toBe(model.nodeCount);
    expect(j.parameters).toBe(model.parameterCount);
    expect(j.cuts).toHaveLength(j.computeNodes + 1);
    expect(j.blocks).toHaveLength(j.computeNodes);
    const inner = j.cuts.slice(1, -1) as { tensors: string[]; bytes: number }[];
    expect(j.cutCounts.inner).toBe(inner.length);
    expect(j.cutCounts.single).toBe(inner.filter((c) => c.tensors.length === 1).length);
    expect(j.cutCounts.single + j.cutCounts.multi).toBe(j.cutCounts.inner);
    expect(j.cutCounts.multi).toBeGreaterThan(0);
    expect(j.cutCounts.single).toBeGreaterThanOrEqual(j.cutCounts.scissionKeras.splits);
    expect(j.cuts[0]).toMatchObject({ index: 0, tensors: ['input'], bytes: 3 * 64 * 64 * 4 });
    for (const c of inner) expect(c.bytes).toBeGreaterThan(0);

    const line =
      /^cuts\s+(\d+) inner: (\d+) single-tensor .*?, (\d+) multi-tensor; Scission's rule on the Keras model \((\d+) layers\): (\d+)$/m.exec(
        text.stdout,
      );
    expect(line, text.stdout).not.toBeNull();
    expect(line?.slice(1).map(Number)).toEqual([
      j.cutCounts.inner,
      j.cutCounts.single,
      j.cutCounts.multi,
      j.cutCounts.scissionKeras.layers,
      j.cutCounts.scissionKeras.splits,
    ]);
    expect(text.stdout).toMatch(/^inputs\s+input float32 \[1,3,64,64\]/m);
    expect(text.stdout).toMatch(new RegExp(`^blocks\\s+${j.blocks.length}$`, 'm'));
  });

  it('builds a zoo name into the cache on first use, and limits blocks by frontier size', async () => {
    const r = await cleave('inspect', 'mobilenetv2-small', '--json', '--max-tensors', '1');
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(cache, 'zoo', 'mobilenetv2-small.onnx'))).toBe(true);
    const j = JSON.parse(r.stdout);
    expect(j.blocks).toHaveLength(j.cutCounts.single + 1);
    for (const b of j.blocks) expect(b.frontierTensors).toBe(1);
  });

  it('takes --shape for a model with symbolic dimensions', async () => {
    const r = await cleave('inspect', CLS, '--shape', 'x=1x3x48x192', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).inputs).toEqual([
      { name: 'x', dtype: 'float32', dims: [1, 3, 48, 192], bytes: 3 * 48 * 192 * 4 },
    ]);
  });
});

describe('cleave split', () => {
  it('writes segments and a manifest, and the segments chain to the whole model', async () => {
    const j = JSON.parse((await cleave('inspect', zooFile, '--json')).stdout) as {
      cuts: { index: number; tensors: string[] }[];
    };
    // One multi-tensor cut (inside an inverted-residual block) and a single-tensor cut after it.
    const multi = j.cuts.find((c) => c.index > 0 && c.tensors.length > 1)?.index ?? 0;
    const single = j.cuts.find((c) => c.index > multi + 5 && c.tensors.length === 1)?.index ?? 0;
    expect(multi).toBeGreaterThan(0);
    expect(single).toBeGreaterThan(multi);
    const out = join(dir, 'split-out');
    const r = await cleave('split', zooFile, '--cuts', `${single},${multi}`, '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote 3 segments and manifest\.json/);
    expect(readdirSync(out).sort()).toEqual(['manifest.json', 'segment-0.onnx', 'segment-1.onnx', 'segment-2.onnx']);

    const model = OnnxModel.fromBytes(readFileSync(zooFile), zooFile);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(manifest.format).toBe('cleave-split/1');
    expect(manifest.model.sha256).toBe(model.sha256);
    expect(manifest.cuts).toEqual([multi, single]);
    const n = model.nodes.length;
    expect(manifest.segments.map((s: { start: number; end: number }) => [s.start, s.end])).toEqual([
      [0, multi],
      [multi, single],
      [single, n],
    ]);
    expect(manifest.segments[1].inputs.map((t: { name: string }) => t.name)).toEqual(j.cuts[multi].tensors);
    for (let i = 0; i + 1 < manifest.segments.length; i++)
      expect(manifest.segments[i + 1].inputs).toEqual(manifest.segments[i].outputs);
    expect(manifest.segments[1].inputs[0]).toMatchObject({
      dtype: 'float32',
      dims: expect.any(Array),
      bytes: expect.any(Number),
    });

    const feeds = makeFeeds(resolveInputs(model));
    let carried: Feeds = feeds;
    for (const s of manifest.segments) {
      const segFeeds: Feeds = {};
      for (const t of s.inputs) segFeeds[t.name] = carried[t.name];
      carried = await runBytes(readFileSync(join(out, s.file)), segFeeds);
    }
    const whole = await runBytes(model.bytes, feeds);
    expectClose(carried.probs, whole.probs, 'probs', 1e-5, 1e-4);
  });
});

describe('cleave verify', () => {
  it('passes on a small zoo model and prints a JSON result', async () => {
    const r = await cleave('verify', zooFile, '--json', '--combos', '2');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ pass: true, mismatches: [], splitsChecked: 3, atol: 1e-4, rtol: 1e-3 });
    expect(j.cuts).toBe(OnnxModel.fromBytes(readFileSync(zooFile)).nodes.length - 1);
    expect(j.worstAbs).toBeLessThanOrEqual(1e-4);
  });

  it('prints one PASS line in text mode', async () => {
    const r = await cleave('verify', CLS, '--shape', 'x=1x3x48x192', '--combos', '1', '--max-tensors', '1');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^PASS  .*ch_ppocr_mobile_v2\.0_cls_infer\.onnx: \d+ cuts, 2 splits, .*worst abs error/);
  });
});

describe('bad input', () => {
  it.concurrent('a file that is not ONNX', async () => {
    expectCleanFailure(
      await cleave('inspect', 'notes.onnx'),
      'inspect',
      /notes\.onnx: not a valid ONNX file/,
      'E_BAD_MODEL',
    );
  });

  it.concurrent('a truncated ONNX file', async () => {
    expectCleanFailure(
      await cleave('verify', 'half.onnx', '--shape', 'x=1x3x48x192'),
      'verify',
      /half\.onnx: not a valid ONNX file \(it ends early: .* is the file truncated\?\)/,
      'E_BAD_MODEL',
    );
  });

  it.concurrent('an op ONNX Runtime does not know', async () => {
    expectCleanFailure(
      await cleave('inspect', 'custom-op.onnx'),
      'inspect',
      /custom-op\.onnx: ONNX Runtime cannot load it: .*com\.example:NoSuchOp/,
      'E_UNSUPPORTED',
    );
  });

  it.concurrent('a symbolic input without --shape', async () => {
    expectCleanFailure(
      await cleave('inspect', DET),
      'inspect',
      /input 'x' of .*ch_PP-OCRv4_det_infer\.onnx has symbolic dimensions .*; pass --shape x=1x3xNxN with numbers for N/,
      'E_BAD_SHAPE',
    );
  });

  it.concurrent('a --shape of the wrong rank', async () => {
    expectCleanFailure(
      await cleave('inspect', CLS, '--shape', 'x=1x3x48'),
      'inspect',
      /--shape x: rank 3 does not match/,
      'E_BAD_SHAPE',
    );
  });

  it.concurrent('a --shape that is not a shape', async () => {
    expectCleanFailure(
      await cleave('inspect', CLS, '--shape', 'x=big'),
      'inspect',
      /--shape 'x=big': dimensions must be positive integers/,
      'E_BAD_SHAPE',
    );
  });

  it.concurrent('a cut index out of range, writing nothing', async () => {
    const out = join(dir, 'never-written');
    expectCleanFailure(
      await cleave('split', zooFile, '--cuts', '5,99999', '--out', out),
      'split',
      /--cuts: cut 99999 is out of range; inner cuts are 1\.\.156 for /,
      'E_BAD_CUT',
    );
    expect(existsSync(out)).toBe(false);
  });

  it.concurrent('a cut through a string tensor: inspect says why it is no split, split refuses it', async () => {
    const file = join(dir, 'strings.onnx');
    writeFileSync(
      file,
      tinyModel({
        inputs: [{ name: 'x', dims: [1, 8] }],
        outputs: [{ name: 'y', dims: [1, 8] }],
        nodes: [
          { op: 'Relu', inputs: ['x'], outputs: ['r'], name: 'relu' },
          { op: 'Cast', inputs: ['r'], outputs: ['s'], attrs: { to: 8 }, name: 'tostring' },
          { op: 'Cast', inputs: ['s'], outputs: ['y'], attrs: { to: 1 }, name: 'back' },
        ],
      }),
    );
    const shown = await cleave('inspect', file);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/1 of them cannot be a split: .*cut 2: 's' is a string tensor/);
    expectCleanFailure(
      await cleave('split', file, '--cuts', '2', '--out', join(dir, 'never')),
      'split',
      /--cuts: cut 2 cannot be a split: 's' is a string tensor/,
      'E_BAD_CUT',
    );
  });

  it.concurrent('a cut list that is not integers', async () => {
    expectCleanFailure(
      await cleave('split', zooFile, '--cuts', '3,x', '--out', join(dir, 'x')),
      'split',
      /--cuts '3,x': 'x' is not an integer/,
      'E_BAD_INPUT',
    );
  });

  it.concurrent('split without --cuts', async () => {
    expectCleanFailure(
      await cleave('split', zooFile, '--out', join(dir, 'x')),
      'split',
      /--cuts is required/,
      'E_BAD_INPUT',
    );
  });

  it.concurrent('an unknown zoo name', async () => {
    expectCleanFailure(
      await cleave('zoo', 'build', 'resnet51', '--out', join(dir, 'z')),
      'zoo',
      /unknown zoo model 'resnet51' \(known: vgg16, /,
      'E_UNKNOWN_MODEL',
    );
    expectCleanFailure(
      await cleave('inspect', 'resnet51-small'),
      'inspect',
      /model 'resnet51-small': no such file, and not a zoo model/,
      'E_BAD_INPUT',
    );
  });

  it.concurrent('a path that does not exist', async () => {
    expectCleanFailure(
      await cleave('inspect', '/nonexistent/dir/model.onnx'),
      'inspect',
      /model '\/nonexistent\/dir\/model\.onnx': no such file/,
      'E_BAD_INPUT',
    );
  });

  it.concurrent('a directory instead of a file', async () => {
    expectCleanFailure(
      await cleave('split', '.', '--cuts', '1', '--out', join(dir, 'x')),
      'split',
      /model '\.' is a directory, not an ONNX file/,
      'E_BAD_INPUT',
    );
  });

  it.concurrent('an unknown flag', async () => {
    expectCleanFailure(
      await cleave('inspect', zooFile, '--frobnicate'),
      'inspect',
      /Unknown option '--frobnicate'/,
      'E_BAD_INPUT',
    );
  });

  it.concurrent('a bad tolerance', async () => {
    expectCleanFailure(
      await cleave('verify', zooFile, '--atol', 'lots'),
      'verify',
      /--atol 'lots': expected a non-negative number/,
      'E_BAD_INPUT',
    );
  });

  it.concurrent('an unknown command', async () => {
    const r = await cleave('frobnicate', zooFile);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^cleave: unknown command 'frobnicate'\n/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });
});
