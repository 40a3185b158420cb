// The `keyward` command line: serve (default), migrate, bootstrap.
import { parseArgs } from "node:util";
import { loadConfig, type Config } from "./config.ts";
import { createLogger, type Logger } from "./logger.ts";
import { createAuditLog } from "./audit/audit-log.ts";
import { systemClock } from "./clock.ts";
import { openStore, type Store } from "./db/store.ts";
import { createUnitsOfWork } from "./db/unit-of-work.ts";
import { bootstrapTenant, isEmptyDirectory, type BootstrapResult } from "./directory/bootstrap.ts";
import { startKeyward } from "./main.ts";
import { ensurePortAvailable } from "./server/listener.ts";
import { StartupError } from "./startup-error.ts";
import { runPrimary, runWorker, workerCount, workerSlot } from "./workers.ts";

const usage = `usage: keyward <command> [options]

commands:
  serve                         run the service (default)
        [--workers <n>]         processes serving the port (default: one per core,
                                or KEYWARD_WORKERS; 1 = a single process)
  migrate                       apply pending database migrations and exit
  bootstrap --tenant <slug>     create the tenant if needed and print a new tenant admin key
            [--json]            print it as JSON, for scripts

configuration comes from the environment: PORT, HOST, DATABASE_URL, KEYWARD_DATA_DIR,
KEYWARD_AUDIENCE_DOMAIN, KEYWARD_OIDC_ISSUERS, KEYWARD_WORKERS, LOG_LEVEL (see README.md)`;

/** Runs one CLI invocation; returns the process exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: { tenant: { type: "string" }, json: { type: "boolean" }, workers: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  const command = positionals[0] ?? "serve";
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const config = loadConfig();
  switch (command) {
    case "serve":
      return serve(createLogger({ level: config.logLevel, ...prettyOption(config) }), config, values.workers);
    case "migrate": {
      const logger = createLogger({ level: config.logLevel, ...prettyOption(config) });
      const store = await openStore(config, logger, { attach: true });
      await store.close();
      process.stdout.write("migrations up to date\n");
      return 0;
    }
    case "bootstrap": {
      if (values.tenant === undefined) throw new StartupError("bootstrap needs --tenant <slug>");
      // Logs go to stderr so that stdout holds only the result (JSON with --json).
      const logger = createLogger({ level: config.logLevel === "info" ? "warn" : config.logLevel, destination: process.stderr });
      const store = await openStore(config, logger, { attach: true });
      try {
        const result = await bootstrap(store, config, logger, values.tenant);
        process.stdout.write(values.json === true ? `${JSON.stringify(result)}\n` : describeBootstrap(result));
      } finally {
        await store.close();
      }
      return 0;
    }
    default:
      process.stderr.write(`keyward: unknown command ${JSON.stringify(command)}\n${usage}\n`);
      return 2;
  }
}

async function serve(rootLogger: Logger, config: Config, workersFlag: string | undefined): Promise<number> {
  const slot = workerSlot();
  const workers = slot === undefined ? workerCount(workersFlag) : 1;
  // Under `--workers N`, every line says which process wrote it: 1…N a worker, 0 the primary.
  const logger = slot !== undefined ? rootLogger.child({ worker: slot, pid: process.pid }) : workers > 1 ? rootLogger.child({ worker: 0 }) : rootLogger;
  // Handlers go in before startup, so a signal during startup still shuts down cleanly.
  let stopRequested!: () => void;
  const stop = new Promise<void>((resolve) => (stopRequested = resolve));
  const { stopping, request } = onStopRequest(logger, stopRequested);
  if (slot !== undefined) {
    return runWorker({ config, logger, stop, stopping, slot, onPrimaryGone: () => (stopping() ? undefined : request("primary exited")) });
  }
  // The port first: a port in use must not cost a database start and a migration.
  await ensurePortAvailable(config.host, config.port);
  if (workers > 1) {
    try {
      return await runPrimary({ config, logger, stop, stopping, workers, prepare: (store) => prepareFirstStart(store, config, logger) });
    } catch (err) {
      if (!stopping()) throw err;
      logger.error({ err }, "shutdown failed");
      return 1;
    }
  }
  const store = await openStore(config, logger);
  try {
    await prepareFirstStart(store, config, logger);
    const keyward = await startKeyward({ config, logger, store });
    // keyward's own PostgreSQL dying is not an outage that heals by itself: nothing restarts it
    // but the next start. Drain and exit non-zero so that a supervisor restarts keyward.
    const died = await Promise.race([stop.then(() => undefined), store.died]);
    if (died !== undefined) logger.error(`${died}: shutting down with exit code 1; the next start restarts PostgreSQL on the same data folder`);
    await keyward.stop();
    return died === undefined ? 0 : 1;
  } catch (err) {
    if (!stopping()) throw err;
    logger.error({ err }, "shutdown failed");
    return 1;
  } finally {
    await store.close();
  }
}

/**
 * A second signal this soon after the first is the same request: Ctrl-C at a terminal
 * reaches every process of the foreground group, and npm (or the keyward bin) forwards it too.
 */
const repeatedSignalMs = 1_000;
/** How often keyward checks whether the npm that started it is still its parent. */
const launcherCheckMs = 500;

/**
 * Calls `stop` once on SIGTERM, SIGINT or SIGHUP (a later signal, after the first second,
 * exits at once), and when the npm or npx that started keyward has gone away: npx (and
 * npm scripts without `exec`) run keyward through `sh -c`, and a signal sent to them ends
 * that shell, never keyward, which would be left running, orphaned, holding the port; a
 * SIGKILLed npm orphans it too. Returns whether a stop was requested.
 */
function onStopRequest(logger: Logger, stop: () => void): { stopping: () => boolean; request: (reason: string) => void } {
  let firstAt: number | undefined;
  const request = (reason: string) => {
    const now = Date.now();
    if (firstAt === undefined) {
      firstAt = now;
      logger.info({ signal: reason }, "shutting down");
      stop();
    } else if (now - firstAt >= repeatedSignalMs) {
      logger.warn({ signal: reason }, "second signal: exiting now");
      process.exit(1);
    }
  };
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => request(signal));
  if (process.env["npm_lifecycle_event"] !== undefined) {
    const launcher = process.ppid;
    const timer = setInterval(() => {
      if (process.ppid === launcher) return;
      clearInterval(timer);
      request("launcher exited");
    }, launcherCheckMs);
    timer.unref();
  }
  return { stopping: () => firstAt !== undefined, request };
}

function bootstrap(store: Store, config: Config, logger: Logger, tenant: string): Promise<BootstrapResult> {
  const units = createUnitsOfWork(store.db);
  const audit = createAuditLog({ units, clock: systemClock, logger });
  return bootstrapTenant({ units, clock: systemClock, audit, minting: config }, tenant);
}

function describeBootstrap(r: BootstrapResult): string {
  return [
    r.tenantCreated ? `Created tenant "${r.tenant}".` : `Tenant "${r.tenant}" exists.`,
    `New tenant admin key (${r.slot} slot${r.replaced === "" ? "" : `, replacing ${r.replaced}`}). It is shown once, now: store it safely.`,
    "",
    `  ${r.secret}`,
    "",
    `Key: ${r.keyName}`,
    "",
  ].join("\n");
}

/** Runs the first-start bootstrap when keyward's own (embedded) database is empty. */
async function prepareFirstStart(store: Store, config: Config, logger: Logger): Promise<void> {
  if (store.embedded && (await isEmptyDirectory(createUnitsOfWork(store.db)))) await firstStart(store, config, logger);
}

/**
 * The first start on an empty embedded database creates the tenant `default` and shows its
 * admin key on the terminal (never in the JSON log). Without a terminal it only says how.
 */
async function firstStart(store: Store, config: Config, logger: Logger): Promise<void> {
  const terminal = process.stdout.isTTY ? process.stdout : process.stderr.isTTY ? process.stderr : undefined;
  if (terminal === undefined) {
    logger.info("the database is empty: run `npx keyward bootstrap --tenant <slug>` to create a tenant and its first admin key");
    return;
  }
  const result = await bootstrap(store, config, logger, "default");
  terminal.write(`\nFirst start: ${describeBootstrap(result)}\n`);
}

function prettyOption(config: Config): { pretty?: boolean } {
  return config.logFormat === "auto" ? {} : { pretty: config.logFormat === "pretty" };
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
