/**
 * What a source of cluster state (a manifests dir, a Kubernetes API server) hands the agent:
 * batches of upserts and deletes of namespaces, pods and policies, already parsed and validated
 * by @weft/policy. A source reports `synced` once its initial state is delivered; the agent
 * computes policy for the datapath only from a synced source (a half-loaded set of policies
 * would open flows that the full set denies).
 */
import type { AnyPolicy, Namespace, Pod } from '@weft/policy';

export type SourceChange =
  | { op: 'upsert'; kind: 'Namespace'; namespace: Namespace }
  | { op: 'delete'; kind: 'Namespace'; name: string }
  | { op: 'upsert'; kind: 'Pod'; pod: Pod }
  | { op: 'delete'; kind: 'Pod'; namespace: string; name: string }
  | { op: 'upsert'; kind: 'Policy'; policy: AnyPolicy }
  /** key: policyKey() of the policy. */
  | { op: 'delete'; kind: 'Policy'; key: string };

export interface SourceSink {
  /** Applied in order, as one unit. */
  apply(changes: SourceChange[]): void;
  /** The initial state has been delivered (called once). */
  synced(): void;
}

export interface PolicySource {
  readonly kind: 'manifests' | 'kubernetes';
  /** Human description for status and logs (the dir, the API server URL). */
  readonly description: string;
  start(sink: SourceSink): Promise<void>;
  stop(): Promise<void>;
}
