/**
 * ECS instance metadata (http://100.100.100.200/latest/meta-data/...), in hardened mode:
 * a token from `PUT /latest/api/token` is sent with every read.
 */
import { CloudApiError } from '../errors';

export const DEFAULT_METADATA_ENDPOINT = 'http://100.100.100.200';
const TOKEN_TTL_SECONDS = 21_600;

export interface InstanceIdentity {
  instanceId: string;
  instanceType: string;
  regionId: string;
  zoneId: string;
  vpcId: string;
  vSwitchId: string;
  primaryMac: string;
}

export interface EniMetadata {
  mac: string;
  eniId: string;
  vSwitchId: string;
  vSwitchCidr: string;
  gateway: string;
  primaryIp: string;
  privateIpv4s: string[];
  ipv6Gateway?: string;
  vSwitchIpv6Cidr?: string;
  ipv6s: string[];
}

export class MetadataClient {
  private token: { value: string; expires: number } | undefined;

  constructor(
    readonly endpoint = DEFAULT_METADATA_ENDPOINT,
    private readonly timeoutMs = 3_000,
  ) {}

  private async getToken(): Promise<string> {
    if (this.token && this.token.expires > Date.now() + 60_000) return this.token.value;
    const res = await fetch(`${this.endpoint}/latest/api/token`, {
      method: 'PUT',
      headers: { 'X-aliyun-ecs-metadata-token-ttl-seconds': String(TOKEN_TTL_SECONDS) },
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!res.ok)
      throw new CloudApiError('metadata', `Http${res.status}`, 'cannot get a metadata token', res.status);
    this.token = { value: (await res.text()).trim(), expires: Date.now() + TOKEN_TTL_SECONDS * 1000 };
    return this.token.value;
  }

  /** Reads one item below /latest/meta-data/. */
  async get(path: string): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${this.endpoint}/latest/meta-data/${path}`, {
        headers: { 'X-aliyun-ecs-metadata-token': await this.getToken() },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      // An expired/revoked token: get a fresh one once.
      if (res.status === 401 && attempt === 0) {
        this.token = undefined;
        continue;
      }
      if (!res.ok) throw new CloudApiError('metadata', `Http${res.status}`, `GET ${path}`, res.status);
      return (await res.text()).trim();
    }
  }

  private async list(path: string): Promise<string[]> {
    const text = await this.get(path);
    if (text.startsWith('[')) return JSON.parse(text) as string[];
    return text
      .split('\n')
      .map((s) => s.trim().replace(/\/$/, ''))
      .filter(Boolean);
  }

  async identity(): Promise<InstanceIdentity> {
    const [instanceId, instanceType, regionId, zoneId, vpcId, vSwitchId, primaryMac] = await Promise.all([
      this.get('instance-id'),
      this.get('instance/instance-type'),
      this.get('region-id'),
      this.get('zone-id'),
      this.get('vpc-id'),
      this.get('vswitch-id'),
      this.get('mac'),
    ]);
    return { instanceId, instanceType, regionId, zoneId, vpcId, vSwitchId, primaryMac };
  }

  macs(): Promise<string[]> {
    return this.list('network/interfaces/macs/');
  }

  async eni(mac: string): Promise<EniMetadata> {
    const base = `network/interfaces/macs/${mac}`;
    const optional = (p: string) => this.get(`${base}/${p}`).catch(() => undefined);
    const [
      eniId,
      vSwitchId,
      vSwitchCidr,
      gateway,
      primaryIp,
      privateIpv4s,
      ipv6Gateway,
      vSwitchIpv6Cidr,
      ipv6s,
    ] = await Promise.all([
      this.get(`${base}/network-interface-id`),
      this.get(`${base}/vswitch-id`),
      this.get(`${base}/vswitch-cidr-block`),
      this.get(`${base}/gateway`),
      this.get(`${base}/primary-ip-address`),
      this.list(`${base}/private-ipv4s`),
      optional('ipv6-gateway'),
      optional('vswitch-ipv6-cidr-block'),
      this.list(`${base}/ipv6s`).catch(() => [] as string[]),
    ]);
    return {
      mac,
      eniId,
      vSwitchId,
      vSwitchCidr,
      gateway,
      primaryIp,
      privateIpv4s,
      ipv6Gateway,
      vSwitchIpv6Cidr,
      ipv6s,
    };
  }
}
