/**
 * The origin's view of the deployment (ClusterView), answered over the peer mesh and the peers' HTTP APIs:
 * profiles of the hosts it can reach (each fetched once: a profile changes only with a restart), their link
 * measurements, and their statuses.
 */
import type { Logger } from 'pino';
import { errorMessage } from '../../errors.js';
import type { Profile } from '../../planner/profile.js';
import type { HostConfig } from '../config.js';
import type { ClusterView, HostStatus, HostUnreachable, LinkReport } from '../plan/cluster-view.js';
import type { PeerClient } from './peer-client.js';

export interface ClusterOptions {
  readonly self: string;
  readonly hosts: readonly HostConfig[];
  /** Whether this host's link to `host` is open now. */
  isOpen(host: string): boolean;
  readonly client: PeerClient;
  /** The model whose profiles these are (a deployment serving several has one Cluster per model). */
  readonly model: string;
  readonly profile: Profile;
  status(): HostStatus;
  links(): LinkReport[];
  readonly logger: Logger;
}

export class Cluster implements ClusterView {
  private readonly peerProfiles = new Map<string, Profile>();

  constructor(private readonly o: ClusterOptions) {}

  /** Forgets `host`'s profile: it is fetched again next time (the host restarted). */
  forget(host: string): void {
    this.peerProfiles.delete(host);
  }

  async profiles(): Promise<Profile[]> {
    const got = await Promise.all(
      this.reachable().map(async (h) => {
        const cached = this.peerProfiles.get(h.name);
        if (cached) return cached;
        try {
          const path = `/v1/profile?model=${encodeURIComponent(this.o.model)}`;
          const p = (await this.o.client.request(h.name, 'GET', path)) as Profile;
          this.peerProfiles.set(h.name, p);
          return p;
        } catch (e) {
          this.o.logger.warn({ peer: h.name, err: errorMessage(e) }, 'no profile from peer; planning without it');
          return null;
        }
      }),
    );
    return [this.o.profile, ...got.filter((p): p is Profile => p !== null)];
  }

  async links(): Promise<LinkReport[]> {
    const got = await Promise.all(
      this.reachable().map((h) =>
        (this.o.client.request(h.name, 'GET', '/v1/links') as Promise<LinkReport[]>).catch(() => [] as LinkReport[]),
      ),
    );
    return [...this.o.links(), ...got.flat()];
  }

  async statuses(): Promise<(HostStatus | HostUnreachable)[]> {
    return Promise.all(
      this.o.hosts.map((h) =>
        h.name === this.o.self
          ? Promise.resolve(this.o.status())
          : (this.o.client.request(h.name, 'GET', '/v1/status') as Promise<HostStatus>).catch((e: unknown) => ({
              host: h.name,
              error: errorMessage(e),
            })),
      ),
    );
  }

  /** Peers this host can plan with now: those whose link from here is open. */
  private reachable(): HostConfig[] {
    return this.o.hosts.filter((h) => h.name !== this.o.self && this.o.isOpen(h.name));
  }
}
