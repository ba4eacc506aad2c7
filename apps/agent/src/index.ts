export { Agent, AGENT_VERSION, type AgentOptions } from './agent';
export { AgentApiServer, type AgentApiHandlers } from './api/server';
export { canonicalIp, validateRegistration, validateTraceRequest } from './api/validate';
export type { AgentDatapath, DatapathMaps, EventStream, MapStats } from './datapath/agent-datapath';
export { PinnedMaps } from './datapath/pinned-maps';
export {
  AgentConfigError,
  AgentError,
  BadRequestError,
  NotFoundError,
  NotReadyError,
  SocketInUseError,
} from './errors';
export { EventsHub } from './events-hub';
export {
  AGENT_USAGE,
  DEFAULT_PIN_ROOT,
  DEFAULT_STATE_DIR,
  parseAgentFlags,
  type AgentConfig,
  type LogLevel,
  type SourceConfig,
} from './flags';
export { createLogger, silentLogger } from './logger';
export { createAgent, runWeftAgent, type AgentService } from './main';
export { AgentMetrics } from './metrics';
export { effectivePod, podKeyOfRegistration, podRefOf, UNNAMED_POD_NAMESPACE } from './pod-identity';
export { EndpointRegistry, MAX_AGENT_ENDPOINT_ID, type RegisteredEndpoint } from './registry';
export { ManifestError, objectKey, parseManifestText, type SourceObject } from './sources/manifest-objects';
export { ManifestsSource, type ManifestsSourceOptions } from './sources/manifests-source';
export type { PolicySource, SourceChange, SourceSink } from './sources/source';
export { applyAgentV8Flags } from './v8-tuning';
