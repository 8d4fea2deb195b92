// Secrets never reach the logs: pino replaces these paths (headers that carry tokens, bodies and objects
// with passwords or tokens) wherever they are logged. Routes do not log bodies; this is the net under that.
export const REDACT_PATHS: readonly string[] = [
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["sec-websocket-protocol"]',
  "headers.authorization",
  'headers["sec-websocket-protocol"]',
  "body.password",
  "body.token",
  "req.body.password",
  "spec.password",
  "password",
  "token",
  "bearerToken",
  "*.password",
  "*.token",
  "*.bearerToken",
  "*.authorization",
  "principal.bearerToken",
];

export const REDACT = { paths: [...REDACT_PATHS], censor: "[redacted]" };
