// Composition root: config → logger → database → services → server → listen.
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createContextValues } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import type { Config } from "./config.ts";
import { systemClock, type Clock } from "./clock.ts";
import type { Logger } from "./logger.ts";
import { openStore, type Store } from "./db/store.ts";
import { requestIdKey } from "./server/context.ts";
import { createErrorInterceptor } from "./server/error-interceptor.ts";
import { createLoggingInterceptor } from "./server/logging-interceptor.ts";
import { createHealthStatus } from "./server/health.ts";
import { HealthCheckResponse_ServingStatus } from "../gen/health/v1/health_pb.ts";
import { withHttpRoutes } from "./server/http-routes.ts";
import { listen } from "./server/listener.ts";
import { createRoutes } from "./server/routes.ts";

/** A running keyward instance. */
export type Keyward = {
  readonly url: string;
  readonly port: number;
  readonly store: Store;
  /** Graceful shutdown: stop accepting, finish in-flight calls, close the database. */
  stop(): Promise<void>;
};

/** Starts keyward with the given configuration (tests inject a logger and a clock). */
export async function startKeyward(opts: { config: Config; logger: Logger; clock?: Clock; store?: Store }): Promise<Keyward> {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const store = opts.store ?? (await openStore(config, logger));
  const health = createHealthStatus();
  void clock;

  const connectHandler = connectNodeAdapter({
    routes: createRoutes({ health }),
    interceptors: [createErrorInterceptor(logger), createLoggingInterceptor(logger)],
    readMaxBytes: config.maxRequestBytes,
    contextValues: (req) => {
      const values = createContextValues();
      const header = req.headers["x-request-id"];
      const given = typeof header === "string" && /^[A-Za-z0-9._:-]{1,100}$/.test(header) ? header : undefined;
      return values.set(requestIdKey, given ?? randomUUID());
    },
  });

  let listener;
  try {
    listener = await listen({
      host: config.host,
      port: config.port,
      handler: withHttpRoutes(connectHandler, { isServing: () => health.get("") === HealthCheckResponse_ServingStatus.SERVING }),
      logger,
    });
  } catch (e) {
    if (!opts.store) await store.close();
    throw e;
  }
  health.set("", HealthCheckResponse_ServingStatus.SERVING);
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${listener.port}`;
  logger.info({ url, embeddedDatabase: store.embedded }, "keyward listening");

  let stopping: Promise<void> | undefined;
  return {
    url,
    port: listener.port,
    store,
    stop() {
      stopping ??= (async () => {
        health.shutdown();
        await listener.close(config.shutdownGraceMs);
        if (!opts.store) await store.close();
        logger.info("keyward stopped");
      })();
      return stopping;
    },
  };
}
