/** A manifest (policy, pod, namespace) that does not validate; `field` is a path like `spec.ingress[0].from[1]`. */
export class PolicyValidationError extends Error {
  readonly code = 'POLICY_INVALID' as const;
  readonly retryable = false;
  readonly field: string;
  readonly reason: string;

  constructor(field: string, reason: string) {
    super(field ? `${field}: ${reason}` : reason);
    this.name = 'PolicyValidationError';
    this.field = field;
    this.reason = reason;
  }
}

/** A request the engine cannot answer, e.g. tracing a pod it does not know. */
export class PolicyEngineError extends Error {
  readonly code: 'UNKNOWN_ENDPOINT' | 'BAD_ARGUMENT';
  readonly retryable = false;

  constructor(code: PolicyEngineError['code'], message: string) {
    super(message);
    this.name = 'PolicyEngineError';
    this.code = code;
  }
}
