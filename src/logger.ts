// The pino logger: JSON by default, pretty on a terminal, secrets redacted always.
import { pino, type Logger } from "pino";

/** Paths pino replaces with "[redacted]" wherever they appear in a log record. */
const redactPaths = [
  "authorization",
  "headers.authorization",
  "req.headers.authorization",
  "*.authorization",
  "secret",
  "*.secret",
  "key",
  "*.key",
  "subjectToken",
  "*.subjectToken",
  "accessToken",
  "*.accessToken",
  "subject_token",
  "*.subject_token",
  "access_token",
  "*.access_token",
  "keyEncryptionKey",
  "*.keyEncryptionKey",
  "password",
  "*.password",
  "databaseUrl",
  "keyPepper",
];

/** Builds the root logger. `destination` lets tests capture every line. */
export function createLogger(opts: { level: string; pretty?: boolean; destination?: NodeJS.WritableStream }): Logger {
  const options = { level: opts.level, redact: { paths: redactPaths, censor: "[redacted]" }, base: { service: "keyward" } };
  if (opts.destination) return pino(options, opts.destination);
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  if (pretty) return pino({ ...options, transport: { target: "pino-pretty", options: { colorize: true } } });
  return pino(options);
}

export type { Logger };
