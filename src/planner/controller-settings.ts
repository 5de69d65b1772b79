/**
 * The adaptive controller's settings: what they mean, their defaults, and the check every setting from
 * outside (the deployment config, `PUT /v1/controller`) goes through.
 */
import { CleaveError } from '../errors.js';
import type { Constraint, Objective } from './types.js';

export interface ControllerSettings {
  /** What a better plan means. Default 'latency'. */
  readonly objective: Objective;
  /** How often the runtime calls `step()`, in ms. Default 500, at least 100. */
  readonly replanIntervalMs: number;
  /** Share (0..1) of the objective a candidate must save to be adopted. Default 0.10. */
  readonly hysteresis: number;
  /** Consecutive rounds the same candidate route must win. Default 2. */
  readonly confirmRounds: number;
  /** No non-urgent change sooner than this after the last one, in ms. Default 3000. */
  readonly minDwellMs: number;
  /**
   * Flap damping (as BGP damps routes): each adoption of a plan adds 1 to that plan's penalty, and 1 to the
   * penalty of each host it took blocks off; both halve every `flapHalfLifeMs`. To be adopted, a plan must
   * beat the current one by hysteresis x 2^penalty, its penalty being the greater of its own and those of
   * the hosts it gives more blocks. Two near-equal plans whose estimates cross back and forth soon stop
   * taking turns, and so does work moved off a host and back by ever different routes, while a real change
   * (a link or host several times slower) clears the bar at once. 0 turns it off. Default 30 000.
   */
  readonly flapHalfLifeMs: number;
  /**
   * A candidate that saves at least this share is adopted on its first round: confirmation guards against
   * noise near the hysteresis, not against a link that got ten times slower (0.5 adopts a plan saving half on
   * its first round). 1, the default, always confirms.
   */
  readonly decisiveGain: number;
  /**
   * Calibration (calibration.ts): when the current plan's requests take more than this many times its
   * predicted latency (mean over the snapshot's `measured` span, with the prediction steady over it), the
   * host at its bottleneck stage is taken to be that much slower for every plan priced. 0 turns it off,
   * otherwise at least 1. Default 1.15: three times the ~5 % the predictions miss by in steady conditions, and
   * under the 15 % a prediction may miss by (issue 9): at 1.2 a plan answering 1.19x its prediction, a 16 %
   * miss, was never corrected.
   */
  readonly calibrateAbove: number;
  /** A calibration fades with this half-life (ms; 0: it lasts until the host's slowdown moves). Default 30 000. */
  readonly calibrationHalfLifeMs: number;
  /** Keep whatever runs. Default false. */
  readonly paused: boolean;
  /** The deployment's constraints, added to the snapshot input's own. Default []. */
  readonly constraints: readonly Constraint[];
  /**
   * The wire codecs a hop may use besides raw, by name; null (the default): every codec the hosts' profiles
   * measured. [] keeps every hop raw.
   */
  readonly codecs: readonly string[] | null;
  /**
   * The accuracy budget: the largest relative error of the model's output (measured at profile time) a lossy
   * codec (fp16, int8) may cause at the cut it is used on. Default 0: lossless codecs only.
   */
  readonly maxError: number;
}

export const CONTROLLER_DEFAULTS: Readonly<ControllerSettings> = Object.freeze({
  objective: 'latency',
  // Two confirming rounds 500 ms apart: a change adopted within ~1.5 s of the links measuring it.
  replanIntervalMs: 500,
  hysteresis: 0.1,
  confirmRounds: 2,
  minDwellMs: 3000,
  flapHalfLifeMs: 30_000,
  decisiveGain: 1,
  calibrateAbove: 1.15,
  calibrationHalfLifeMs: 30_000,
  paused: false,
  constraints: Object.freeze([]) as readonly Constraint[],
  codecs: null,
  maxError: 0,
});

const KINDS: ReadonlySet<string> = new Set([
  'blockOn',
  'blockNotOn',
  'useTier',
  'noTier',
  'useHost',
  'noHost',
  'maxUpload',
  'maxCompute',
  'maxComputeShare',
  'maxWeights',
]);

function bad(msg: string): never {
  throw new CleaveError('E_BAD_INPUT', msg);
}

/** Validates settings from outside (config, HTTP): unknown fields and wrong types throw E_BAD_INPUT naming the field. */
export function checkControllerSettings(partial: unknown): Partial<ControllerSettings> {
  if (typeof partial !== 'object' || partial === null || Array.isArray(partial))
    bad('controller settings: must be an object');
  const out: { -readonly [K in keyof ControllerSettings]?: ControllerSettings[K] } = {};
  const num = (k: string, v: unknown, ok: (x: number) => boolean, what: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) bad(`${k}: must be ${what} (got ${JSON.stringify(v)})`);
    return v;
  };
  for (const [k, v] of Object.entries(partial)) {
    if (v === undefined) continue;
    switch (k) {
      case 'objective':
        if (v !== 'latency' && v !== 'throughput')
          bad(`objective: must be 'latency' or 'throughput' (got ${JSON.stringify(v)})`);
        out.objective = v;
        break;
      case 'replanIntervalMs':
        out.replanIntervalMs = num(k, v, (x) => x >= 100, 'a number >= 100 (ms)');
        break;
      case 'hysteresis':
        out.hysteresis = num(k, v, (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
        break;
      case 'confirmRounds':
        out.confirmRounds = num(k, v, (x) => Number.isInteger(x) && x >= 1, 'an integer >= 1');
        break;
      case 'minDwellMs':
        out.minDwellMs = num(k, v, (x) => x >= 0, 'a number >= 0 (ms)');
        break;
      case 'flapHalfLifeMs':
        out.flapHalfLifeMs = num(k, v, (x) => x >= 0, 'a number >= 0 (ms)');
        break;
      case 'decisiveGain':
        out.decisiveGain = num(k, v, (x) => x > 0 && x <= 1, 'a number in (0, 1]');
        break;
      case 'calibrateAbove':
        out.calibrateAbove = num(k, v, (x) => x === 0 || x >= 1, '0 (off) or a number >= 1');
        break;
      case 'calibrationHalfLifeMs':
        out.calibrationHalfLifeMs = num(k, v, (x) => x >= 0, 'a number >= 0 (ms)');
        break;
      case 'paused':
        if (typeof v !== 'boolean') bad(`paused: must be true or false (got ${JSON.stringify(v)})`);
        out.paused = v;
        break;
      case 'constraints':
        if (!Array.isArray(v)) bad('constraints: must be an array of constraints');
        v.forEach((c: unknown, i) => {
          const kind = typeof c === 'object' && c !== null ? (c as { kind?: unknown }).kind : undefined;
          if (typeof kind !== 'string' || !KINDS.has(kind))
            bad(`constraints[${i}]: unknown constraint kind ${JSON.stringify(kind)} (known: ${[...KINDS].join(', ')})`);
        });
        out.constraints = Object.freeze([...(v as Constraint[])]);
        break;
      case 'codecs':
        if (v !== null && !(Array.isArray(v) && v.every((c) => typeof c === 'string' && c !== '')))
          bad(`codecs: must be null (every codec measured) or a list of codec names (got ${JSON.stringify(v)})`);
        out.codecs = v === null ? null : Object.freeze([...(v as string[])]);
        break;
      case 'maxError':
        out.maxError = num(k, v, (x) => x >= 0, 'a number >= 0 (relative error of the output)');
        break;
      default:
        bad(`${k}: unknown setting (known: ${Object.keys(CONTROLLER_DEFAULTS).join(', ')})`);
    }
  }
  return out;
}
