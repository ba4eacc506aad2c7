/** The few log calls the daemon makes; pino in production, silent or captured in tests. */
export interface Log {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const silentLog: Log = { info() {}, warn() {}, error() {} };

/** JSON lines on stderr (never stdout: the CNI plugin shares the binary). */
export function stderrLog(name: string): Log {
  const line = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    process.stderr.write(
      JSON.stringify({ time: new Date().toISOString(), level, name, msg, ...fields }) + '\n',
    );
  return { info: line('info'), warn: line('warn'), error: line('error') };
}
