/** The planner's public face: exact split planning over a tier chain, pure and synchronous. */
export { plan } from './plan.js';
export { enumeratePlans } from './enumerate.js';
export { profilesToInput, type ProfilesToInputOptions } from './input.js';
export {
  parseProfile,
  checkProfiles,
  PROFILE_FORMAT,
  type Profile,
  type ProfileBlock,
  type ProfileHost,
  type ProfileTimings,
} from './profile.js';
export { parseNetworkCsv, type NetworkLink } from './network.js';
export { parseScissionCriteria, parseConstraintFlag, parseSize, DEFAULT_TIERS } from './criteria.js';
export { formatPlan, formatResult } from './format.js';
export { planSvg } from './svg.js';
export { describeConstraint } from './prepare.js';
export { ATOMS_PER_MS } from './atoms.js';
export * from './types.js';
export { Controller, type Decision } from './controller.js';
export { CONTROLLER_DEFAULTS, checkControllerSettings, type ControllerSettings } from './controller-settings.js';
export { EXPLAIN_LIMITS, loadedLatencyMs } from './explain.js';
export { bottleneckFactor, Calibration, CALIBRATION_LIMITS, type Measured } from './calibration.js';
export { evaluateStages, liveInput, routeOf, type CurrentPlan, type LiveSnapshot } from './live-input.js';
export {
  WindowExtreme,
  RecentMedian,
  slowdownOf,
  ESTIMATE_DEFAULTS,
  type ObservedSegment,
  type SlowdownOptions,
} from './estimate.js';
