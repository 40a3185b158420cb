// The `keyward` command line: serve (default), migrate, bootstrap.
import { parseArgs } from "node:util";
import { loadConfig } from "./config.ts";
import { createLogger, type Logger } from "./logger.ts";
import { openStore } from "./db/store.ts";
import { startKeyward } from "./main.ts";
import { StartupError } from "./startup-error.ts";

const usage = `usage: keyward <command> [options]

commands:
  serve                         run the service (default)
  migrate                       apply pending database migrations and exit
  bootstrap --tenant <slug>     create the tenant if needed and print a new tenant admin key
            [--json]            print it as JSON, for scripts

configuration comes from the environment: PORT, HOST, DATABASE_URL, KEYWARD_DATA_DIR,
KEYWARD_AUDIENCE_DOMAIN, KEYWARD_OIDC_ISSUERS, LOG_LEVEL (see README.md)`;

/** Runs one CLI invocation; returns the process exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: { tenant: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
  });
  const command = positionals[0] ?? "serve";
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const config = loadConfig();
  switch (command) {
    case "serve":
      return serve(createLogger({ level: config.logLevel }), config);
    case "migrate": {
      const logger = createLogger({ level: config.logLevel });
      const store = await openStore(config, logger);
      await store.close();
      process.stdout.write("migrations up to date\n");
      return 0;
    }
    case "bootstrap":
      throw new StartupError("bootstrap is not implemented yet");
    default:
      process.stderr.write(`keyward: unknown command ${JSON.stringify(command)}\n${usage}\n`);
      return 2;
  }
}

async function serve(logger: Logger, config: ReturnType<typeof loadConfig>): Promise<number> {
  // Handlers go in before startup, so a signal during startup still shuts down cleanly.
  let signals = 0;
  let stopRequested!: () => void;
  const stop = new Promise<void>((resolve) => (stopRequested = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    logger.info({ signal }, "shutting down");
    stopRequested();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  const keyward = await startKeyward({ config, logger });
  await stop;
  try {
    await keyward.stop();
    return 0;
  } catch (err) {
    logger.error({ err }, "shutdown failed");
    return 1;
  }
}

/** Prints a failure as one line (a stack trace only at LOG_LEVEL=debug). */
function report(e: unknown): void {
  if (e instanceof StartupError) {
    process.stderr.write(`keyward: ${e.message}\n`);
  } else if (e instanceof Error && (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
    process.stderr.write(`keyward: ${e.message}\n${usage}\n`);
  } else {
    const debug = process.env["LOG_LEVEL"]?.toLowerCase() === "debug";
    process.stderr.write(`keyward: unexpected error: ${debug && e instanceof Error ? e.stack : String(e)}\n`);
  }
}

/** Runs the CLI and exits the process with its code. */
export function main(argv: readonly string[]): void {
  runCli(argv).then(
    (code) => process.exit(code),
    (e: unknown) => {
      report(e);
      process.exit(1);
    },
  );
}

if (import.meta.main) main(process.argv.slice(2));
