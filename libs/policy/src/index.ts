export type {
  AnyPolicy,
  CiliumClusterwideNetworkPolicy,
  CiliumEntity,
  CiliumNetworkPolicy,
  CiliumRule,
  ContainerPort,
  L4Protocol,
  Labels,
  LabelSelector,
  Namespace,
  NetworkPolicy,
  Pod,
  PolicyKind,
} from './model';
export { podKey, policyKey } from './model';
export { PolicyEngineError, PolicyValidationError } from './errors';
export { parseNamespace, parseNetworkPolicy, parsePod, validatePod, type ParseOptions } from './parse-k8s';
export { parseCiliumPolicy } from './parse-cilium';
export { parseManifest, parsePolicy, type Manifest } from './parse';
export {
  FIRST_LOCAL_IDENTITY,
  IdentityAllocator,
  IPPROTO,
  RESERVED_IDENTITY,
  type PersistedIdentity,
} from './identity';
export { formatLabels, podIdentityLabels, type LabelMap } from './labels';
export { Selector, selectorRequirements, type Requirement } from './selector';
export { compilePolicy, type PolicyWarning } from './compile';
export {
  PolicyEngine,
  type EndpointStatus,
  type EndpointVisitor,
  type PolicyDelta,
  type PolicyEngineOptions,
  type PolicyStatus,
  type PolicyWriter,
} from './engine';
export type { TraceResult, TraceStep, TraceRuleMatch, TraceReason, TraceParty } from './trace';
export {
  evaluate,
  evaluateDirection,
  entryMatches,
  IpcacheLpm,
  type DirectionVerdict,
  type EvaluateResult,
} from './evaluate';
export {
  buildNetpolFixture,
  expectMatrix,
  formatMatrix,
  loadNetpolFixture,
  netpolPortName,
  reachability,
  type NetpolFixture,
  type NetpolFixtureOptions,
  type Reachability,
  type ReachabilityMatrix,
} from './netpol-fixture';
