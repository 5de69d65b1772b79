/**
 * The host's outgoing links: one PeerLink (one WebSocket) per other host of the deployment, dialed at start
 * and redialed by the transport when dropped. Frames addressed to a host go out on its link; the link's
 * measurements are what the planner sees.
 */
import type { Logger } from 'pino';
import { CleaveError } from '../../errors.js';
import type { EmulationSettings } from '../../transport/emulator.js';
import type { HeaderInput, Tensor } from '../../transport/frame.js';
import type { FrameHandler } from '../../transport/incoming.js';
import type { TransportOptionsInput } from '../../transport/options.js';
import { PeerLink } from '../../transport/peer-link.js';
import type { HostConfig, LinkConfig } from '../config.js';
import type { LinkReport } from '../plan/cluster-view.js';
import type { LinkPort } from './backpressure.js';

export interface PeerMeshOptions {
  readonly self: HostConfig;
  readonly peers: readonly HostConfig[];
  readonly token: string;
  /** Dial `wss://`, trusting `ca` (absent: the system's roots); absent: `ws://`. */
  readonly tls?: { readonly ca?: Buffer } | null;
  readonly modelSha256: string;
  readonly links: readonly LinkConfig[];
  readonly onFrame: FrameHandler;
  /** The link to `host` went down; `unacked` are the request ids of frames it never got acknowledged. */
  readonly onLost?: (host: string, unacked: readonly string[]) => void;
  /** The link to `host` opened again after it had been open before (the host came back, or restarted). */
  readonly onRejoin?: (host: string) => void;
  /**
   * The link to `host` opened (every time): called before anything else can send on it, so a frame sent here
   * is the first the peer reads on this connection.
   */
  readonly onOpen?: (host: string) => void;
  readonly logger: Logger;
  readonly transport?: TransportOptionsInput;
}

/** Emulation settings for a configured link (Mbit/s are 10^6 bits). */
function emulationOf(l: LinkConfig | undefined): EmulationSettings | null {
  if (!l || (l.mbps === undefined && !l.delayMs)) return null;
  return { bandwidthBps: l.mbps !== undefined ? (l.mbps * 1e6) / 8 : null, delayMs: l.delayMs ?? 0 };
}

export class PeerMesh implements LinkPort {
  private readonly links = new Map<string, PeerLink>();

  constructor(private readonly opts: PeerMeshOptions) {
    for (const p of opts.peers) {
      const conf = opts.links.find((l) => l.from === opts.self.name && l.to === p.name);
      const link = PeerLink.connect({
        url: `${opts.tls ? 'wss' : 'ws'}://${p.listen}/v1/peer`,
        ...(opts.tls?.ca ? { ca: opts.tls.ca } : {}),
        token: opts.token,
        self: { host: opts.self.name, tier: opts.self.tier },
        modelSha256: opts.modelSha256,
        peerHost: p.name,
        onFrame: opts.onFrame,
        emulation: emulationOf(conf),
        logger: opts.logger,
        options: opts.transport,
      });
      link.on('down', (d) => {
        opts.logger[link.stats().connects > 0 ? 'warn' : 'debug'](
          { link: link.name, err: d.error.message, retryInMs: d.retryInMs },
          'link down',
        );
        opts.onLost?.(p.name, d.unacked);
      });
      link.on('open', () => {
        opts.logger.info({ link: link.name }, 'link open');
        opts.onOpen?.(p.name);
        if (link.stats().connects > 1) opts.onRejoin?.(p.name);
      });
      this.links.set(p.name, link);
    }
  }

  has(host: string): boolean {
    return this.links.has(host);
  }

  /** True when the link to `host` exists and is open now. */
  isOpen(host: string): boolean {
    return this.links.get(host)?.state === 'open';
  }

  /** Resolves true once the link to `host` is open (at once if it is), false after `timeoutMs`. */
  whenOpen(host: string, timeoutMs: number): Promise<boolean> {
    const l = this.links.get(host);
    if (!l || timeoutMs <= 0) return Promise.resolve(l?.state === 'open');
    return l.whenOpen(timeoutMs).then(
      () => true,
      () => false,
    );
  }

  /** Sends a frame to `host`; false when the sender should wait for drain (see LinkPort). */
  send(host: string, header: HeaderInput, tensors: readonly Tensor[]): boolean {
    return this.to(host).send(header, tensors);
  }

  onDrain(host: string, listener: () => void): void {
    this.to(host).on('drain', listener);
  }

  onDown(host: string, listener: () => void): void {
    this.to(host).on('down', listener);
  }

  setEmulation(host: string, settings: EmulationSettings | null): EmulationSettings | null {
    const l = this.to(host);
    l.setEmulation(settings);
    return l.getEmulation();
  }

  /** This host's outgoing links as `GET /v1/links` reports them. */
  reports(): LinkReport[] {
    return [...this.links].map(([to, l]) => {
      const s = l.stats();
      return {
        from: this.opts.self.name,
        to,
        rttMs: s.rttMs,
        throughputBps: s.throughputBps,
        rttLastMs: s.rttLastMs,
        rttRecentMs: s.rttRecentMs,
        rttLeastRecentMs: s.rttLeastRecentMs,
        rttStalledSamples: s.rttStalledSamples,
        throughputRecentBps: s.throughputRecentBps,
        throughputCeilingBps: s.throughputCeilingBps,
        throughputSamples: s.throughputSamples,
        state: s.state,
        bytesSent: s.bytesSent,
        uncodedBytesSent: s.uncodedBytesSent,
        queuedBytes: s.queuedBytes,
        emulation: l.getEmulation(),
      };
    });
  }

  /** Resolves when every link has completed its handshake at least once (or rejects after `timeoutMs`). */
  async whenAllOpen(timeoutMs: number): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.whenOpen(timeoutMs)));
  }

  async close(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.close()));
  }

  /** The link to `host`; E_PEER_GONE when the deployment has no such host (nothing can reach it). */
  private to(host: string): PeerLink {
    const l = this.links.get(host);
    if (!l) throw new CleaveError('E_PEER_GONE', `no link from ${this.opts.self.name} to '${host}'`);
    return l;
  }
}
