/**
 * The agent's errors. Every one has a stable `code` (what the API puts in ApiErrorBody and what
 * scripts match on) and the HTTP status the API answers with.
 */
export class AgentError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 500,
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

/** A request the API cannot accept: bad JSON, a field of the wrong type, a bad id. */
export class BadRequestError extends AgentError {
  constructor(code: string, message: string) {
    super(code, message, 400);
    this.name = 'BadRequestError';
  }
}

export class NotFoundError extends AgentError {
  constructor(code: string, message: string) {
    super(code, message, 404);
    this.name = 'NotFoundError';
  }
}

/** Not ready yet (source not synced, restore running): retry later. */
export class NotReadyError extends AgentError {
  constructor(message: string) {
    super('NOT_READY', message, 503, true);
    this.name = 'NotReadyError';
  }
}

/** Bad command line or configuration. */
export class AgentConfigError extends AgentError {
  constructor(message: string) {
    super('AGENT_CONFIG_INVALID', message, 400);
    this.name = 'AgentConfigError';
  }
}

/** The socket path is held by a live agent (or is not a socket). */
export class SocketInUseError extends AgentError {
  constructor(code: 'AGENT_ALREADY_RUNNING' | 'SOCKET_PATH_IN_USE', message: string) {
    super(code, message, 409);
    this.name = 'SocketInUseError';
  }
}
