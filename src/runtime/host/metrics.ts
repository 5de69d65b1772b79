/**
 * Prometheus metrics of one host (prom-client), named in the spirit of Triton's
 * (`nv_inference_request_success` -> `cleave_request_success`). Each host owns its registry.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { LinkReport } from '../plan/cluster-view.js';

/** Microsecond buckets, fine below 5 ms where split inference on loopback lives. */
const LATENCY_BUCKETS_US = [
  100, 200, 300, 400, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000, 7500, 10_000, 15_000, 20_000, 30_000,
  50_000, 75_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000,
];

export class HostMetrics {
  readonly registry = new Registry();
  readonly requestSuccess: Counter<'model'>;
  readonly requestFailure: Counter<'model' | 'code'>;
  readonly requestDuration: Histogram<'model'>;
  readonly secondAttempts: Counter<'model' | 'kind'>;
  readonly stageCompute: Histogram<'model' | 'segment'>;
  readonly linkBytes: Gauge<'from' | 'to'>;
  readonly linkUncodedBytes: Gauge<'from' | 'to'>;
  readonly linkRtt: Gauge<'from' | 'to'>;
  readonly linkThroughput: Gauge<'from' | 'to'>;
  readonly queueDepth: Gauge<'host' | 'model'>;
  readonly planEpoch: Gauge<'host' | 'model'>;
  readonly planChanges: Counter<'model' | 'reason'>;
  readonly predictedLatency: Gauge<'model'>;
  readonly measuredLatency: Gauge<'model' | 'quantile'>;
  readonly controllerRound: Histogram<'model'>;
  readonly controllerCompute: Histogram<'model'>;
  private links: () => readonly LinkReport[] = () => [];

  constructor(host: string, tier: string) {
    this.registry.setDefaultLabels({ host, tier });
    collectDefaultMetrics({ register: this.registry, prefix: 'cleave_process_' });
    const r = [this.registry];
    this.requestSuccess = new Counter({
      name: 'cleave_request_success',
      help: 'Inference requests answered successfully',
      labelNames: ['model'],
      registers: r,
    });
    this.requestFailure = new Counter({
      name: 'cleave_request_failure',
      help: 'Inference requests that failed, by error code',
      labelNames: ['model', 'code'],
      registers: r,
    });
    this.secondAttempts = new Counter({
      name: 'cleave_request_second_attempts_total',
      help: "Requests run a second time at the origin: 'retry' (a host on the route was lost), 'hedge' (stranded on a replaced plan)",
      labelNames: ['model', 'kind'],
      registers: r,
    });
    this.requestDuration = new Histogram({
      name: 'cleave_request_duration_us',
      help: 'End-to-end request latency at the gateway (arrival to answer), microseconds',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS_US,
      registers: r,
    });
    this.stageCompute = new Histogram({
      name: 'cleave_compute_infer_duration_us',
      help: 'Segment compute time on this host (inside the ORT worker), microseconds',
      labelNames: ['model', 'segment'],
      buckets: LATENCY_BUCKETS_US,
      registers: r,
    });
    // Link figures are read from the links when scraped, not pushed on every frame sent.
    const links = (): readonly LinkReport[] => this.links();
    const linkGauge = (name: string, help: string, value: (l: LinkReport) => number | null): Gauge<'from' | 'to'> =>
      new Gauge({
        name,
        help,
        labelNames: ['from', 'to'],
        registers: r,
        collect() {
          for (const l of links()) this.set({ from: l.from, to: l.to }, value(l) ?? 0);
        },
      });
    this.linkBytes = linkGauge('cleave_link_bytes_sent', 'Bytes sent on a directed link', (l) => l.bytesSent);
    this.linkUncodedBytes = linkGauge(
      'cleave_link_uncoded_bytes_sent',
      'Bytes a directed link would have sent with every tensor raw (cleave_link_bytes_sent is what it sent in its wire codecs)',
      (l) => l.uncodedBytesSent ?? l.bytesSent,
    );
    this.linkRtt = linkGauge(
      'cleave_link_rtt_ms',
      'Measured round-trip time of a directed link (WebSocket ping), ms',
      (l) => l.rttMs,
    );
    this.linkThroughput = linkGauge(
      'cleave_link_throughput_bytes_per_second',
      'Measured throughput of a directed link from acknowledged frames',
      (l) => l.throughputBps,
    );
    this.queueDepth = new Gauge({
      name: 'cleave_queue_depth',
      help: 'Requests in flight at this host',
      labelNames: ['host', 'model'],
      registers: r,
    });
    this.planEpoch = new Gauge({
      name: 'cleave_plan_epoch',
      help: 'Epoch of the plan new requests take',
      labelNames: ['host', 'model'],
      registers: r,
    });
    this.planChanges = new Counter({
      name: 'cleave_plan_changes_total',
      help: 'Plans adopted by the adaptive controller, by reason (urgent: the current plan could not run; better: it beat the current one by the hysteresis)',
      labelNames: ['model', 'reason'],
      registers: r,
    });
    this.predictedLatency = new Gauge({
      name: 'cleave_plan_predicted_latency_ms',
      help: "The current plan's predicted latency on the live estimates, ms",
      labelNames: ['model'],
      registers: r,
    });
    this.measuredLatency = new Gauge({
      name: 'cleave_plan_measured_latency_ms',
      help: "The current plan's measured end-to-end latency over the latency window, ms",
      labelNames: ['model', 'quantile'],
      registers: r,
    });
    this.controllerRound = new Histogram({
      name: 'cleave_controller_round_duration_us',
      help: "One adaptive controller round's wall time (the hosts' profiles and plan input, snapshot, search, decision), microseconds",
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS_US,
      registers: r,
    });
    this.controllerCompute = new Histogram({
      name: 'cleave_controller_compute_duration_us',
      help: 'The part of a controller round that holds the event loop (snapshot, search, decision), microseconds',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS_US,
      registers: r,
    });
  }

  /** Where the link gauges (bytes sent, RTT, throughput) read their values at scrape time. */
  observeLinks(source: () => readonly LinkReport[]): void {
    this.links = source;
  }
}
