// grpc.health.v1.Health (Check, Watch, List) for "" and every keyward service, backed by a
// small in-memory table: a service is SERVING while every component it needs (PostgreSQL)
// is available, NOT_SERVING otherwise and after shutdown.

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
} from "../../gen/health/v1/health_pb.ts";
import type { HealthCheckResponse } from "../../gen/health/v1/health_pb.ts";
import { AuditService } from "../../gen/keyward/v1/audit_service_pb.ts";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { TokenExchangeService } from "../../gen/keyward/v1/token_exchange_service_pb.ts";

/** Serving status values so callers need not import generated code (UNKNOWN, SERVING, NOT_SERVING, SERVICE_UNKNOWN). */
export const ServingStatus = HealthCheckResponse_ServingStatus;

/** A grpc.health.v1 serving status value. */
export type ServingStatus = HealthCheckResponse_ServingStatus;

/** The state of one thing keyward needs (e.g. "database"); `reason` is short and secret-free. */
export type ComponentState = { status: "available" } | { status: "unavailable"; reason: string };

/** What `GET /healthz` shows: the overall status and each component's state. */
export type HealthReport = {
  status: "SERVING" | "NOT_SERVING";
  components: Record<string, ComponentState | { status: "shutting_down" }>;
};

/** Every service keyward serves ("" = the whole server), each with the components it cannot serve without. */
const servedServiceNeeds: Readonly<Record<string, readonly string[]>> = Object.freeze({
  "": ["database"],
  [KeyService.typeName]: ["database"],
  [PolicyService.typeName]: ["database"],
  [TokenExchangeService.typeName]: ["database"],
  [DirectoryService.typeName]: ["database"],
  [AuditService.typeName]: ["database"],
});

/** Per-service serving status, derived from the state of the components the services need. */
export interface HealthStatus {
  /** Records a component's state; every service that needs it turns SERVING or NOT_SERVING (watchers are told). Ignored after shutdown(). */
  setComponent(name: string, state: ComponentState): void;
  /** Current status of `service`, or undefined when the service is unknown. */
  get(service: string): ServingStatus | undefined;
  /** Snapshot of every known service and its status. */
  entries(): ReadonlyMap<string, ServingStatus>;
  /**
   * Current status of `service` (SERVICE_UNKNOWN if unknown), then every change;
   * ends when `signal` aborts or after shutdown() has reported NOT_SERVING.
   */
  watch(service: string, signal: AbortSignal): AsyncIterable<ServingStatus>;
  /** The overall status and every component's state, for `GET /healthz`. */
  report(): HealthReport;
  /** Marks every service NOT_SERVING, freezes the table, and ends all watch streams. */
  shutdown(): void;
}

/** One open watch stream. */
interface Watcher {
  readonly service: string;
  push(status: ServingStatus): void;
  close(): void;
}

/**
 * Creates a status table for `needs` (service name → components it needs); a component counts
 * as available until setComponent says otherwise, so every service starts SERVING.
 */
export function createHealthStatus(needs: Readonly<Record<string, readonly string[]>> = servedServiceNeeds): HealthStatus {
  const statuses = new Map<string, ServingStatus>(Object.keys(needs).map((service) => [service, ServingStatus.SERVING]));
  const components = new Map<string, ComponentState>();
  for (const list of Object.values(needs)) for (const c of list) components.set(c, { status: "available" });
  const watchers = new Set<Watcher>();
  let isShutdown = false;

  const derive = (service: string): ServingStatus =>
    (needs[service] ?? []).every((c) => components.get(c)?.status !== "unavailable") ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;

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
      // Only a watch begun after shutdown ends here; one begun before still gets the
      // NOT_SERVING that shutdown queued while it was waiting to deliver its first status.
      const begunAfterShutdown = isShutdown;
      yield last;
      if (begunAfterShutdown) {
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
    setComponent(name, state) {
      if (isShutdown) {
        return;
      }
      components.set(name, state);
      for (const service of statuses.keys()) {
        update(service, derive(service));
      }
    },
    get: (service) => statuses.get(service),
    entries: () => new Map(statuses),
    watch,
    report() {
      const shown: HealthReport["components"] = Object.fromEntries(components);
      if (isShutdown) {
        shown["server"] = { status: "shutting_down" };
      }
      return { status: statuses.get("") === ServingStatus.SERVING ? "SERVING" : "NOT_SERVING", components: shown };
    },
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
