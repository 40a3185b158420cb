// grpc.health.v1.Health (Check, Watch, List) backed by a small in-memory
// status table that the rest of the server updates (readiness, shutdown).

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
} from "../../gen/health/v1/health_pb.ts";
import type { HealthCheckResponse } from "../../gen/health/v1/health_pb.ts";

/** Serving status values so callers need not import generated code (UNKNOWN, SERVING, NOT_SERVING, SERVICE_UNKNOWN). */
export const ServingStatus = HealthCheckResponse_ServingStatus;

/** A grpc.health.v1 serving status value. */
export type ServingStatus = HealthCheckResponse_ServingStatus;

/** Per-service serving status shared between the Health handlers and the code that knows whether we are ready. */
export interface HealthStatus {
  /** Sets the status of `service` ("" = the whole server) and notifies watchers; ignored after shutdown(). */
  set(service: string, status: ServingStatus): void;
  /** Current status of `service`, or undefined when the service is unknown. */
  get(service: string): ServingStatus | undefined;
  /** Snapshot of every known service and its status. */
  entries(): ReadonlyMap<string, ServingStatus>;
  /**
   * Current status of `service` (SERVICE_UNKNOWN if unknown), then every change;
   * ends when `signal` aborts or after shutdown() has reported NOT_SERVING.
   */
  watch(service: string, signal: AbortSignal): AsyncIterable<ServingStatus>;
  /** Marks every service NOT_SERVING, freezes the table, and ends all watch streams. */
  shutdown(): void;
  /** True once shutdown() has been called. */
  readonly isShutdown: boolean;
}

/** One open watch stream. */
interface Watcher {
  readonly service: string;
  push(status: ServingStatus): void;
  close(): void;
}

/** Creates a status table in which the overall server ("") starts SERVING. */
export function createHealthStatus(): HealthStatus {
  const statuses = new Map<string, ServingStatus>([["", ServingStatus.SERVING]]);
  const watchers = new Set<Watcher>();
  let isShutdown = false;

  const current = (service: string): ServingStatus =>
    statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;

  const update = (service: string, status: ServingStatus): void => {
    if (statuses.get(service) === status) {
      return;
    }
    statuses.set(service, status);
    for (const w of watchers) {
      if (w.service === service) {
        w.push(status);
      }
    }
  };

  async function* watch(service: string, signal: AbortSignal): AsyncGenerator<ServingStatus> {
    if (signal.aborted) {
      return;
    }
    const pending: ServingStatus[] = [];
    let closed = false;
    let wake: (() => void) | undefined;
    const notify = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const watcher: Watcher = {
      service,
      push: (status) => {
        pending.push(status);
        notify();
      },
      close: () => {
        closed = true;
        notify();
      },
    };
    const onAbort = (): void => watcher.close();
    signal.addEventListener("abort", onAbort, { once: true });
    watchers.add(watcher);
    try {
      let last = current(service);
      yield last;
      if (isShutdown) {
        return;
      }
      for (;;) {
        for (let s = pending.shift(); s !== undefined; s = pending.shift()) {
          if (signal.aborted) {
            return;
          }
          if (s !== last) {
            last = s;
            yield s;
          }
        }
        if (closed) {
          return;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      watchers.delete(watcher);
      signal.removeEventListener("abort", onAbort);
    }
  }

  return {
    set(service, status) {
      if (!isShutdown) {
        update(service, status);
      }
    },
    get: (service) => statuses.get(service),
    entries: () => new Map(statuses),
    watch,
    shutdown() {
      if (isShutdown) {
        return;
      }
      isShutdown = true;
      for (const service of statuses.keys()) {
        update(service, ServingStatus.NOT_SERVING);
      }
      for (const w of [...watchers]) {
        w.close();
      }
    },
    get isShutdown() {
      return isShutdown;
    },
  };
}

/** Registers grpc.health.v1.Health (Check, Watch, List) answering from `status`. */
export function registerHealth(router: ConnectRouter, status: HealthStatus): void {
  router.service(Health, {
    check(req) {
      const s = status.get(req.service);
      if (s === undefined) {
        throw new ConnectError(`unknown service: ${JSON.stringify(req.service)}`, Code.NotFound);
      }
      return { status: s };
    },
    async *watch(req, ctx) {
      for await (const s of status.watch(req.service, ctx.signal)) {
        yield { status: s };
      }
    },
    list() {
      const statuses: Record<string, HealthCheckResponse> = {};
      for (const [service, s] of status.entries()) {
        statuses[service] = create(HealthCheckResponseSchema, { status: s });
      }
      return { statuses };
    },
  });
}
