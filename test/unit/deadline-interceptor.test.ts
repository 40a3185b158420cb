// The deadline interceptor in process (no sockets): a handler stuck on a dependency does not
// hold the answer past the caller's deadline; without a deadline nothing changes.
import { describe, expect, test } from "@jest/globals";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health/v1/health_pb.ts";
import { createDeadlineInterceptor } from "../../src/server/deadline-interceptor.ts";

/** A Health service whose Check waits until `release` is called (or 10 s), then answers or fails. */
function stuckHealth(outcome: "answer" | "fail") {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 10_000);
    release = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  const transport = createRouterTransport(
    (router) => {
      router.service(Health, {
        async check() {
          await gate;
          if (outcome === "fail") throw new Error("database gone");
          return { status: HealthCheckResponse_ServingStatus.SERVING };
        },
      });
    },
    { router: { interceptors: [createDeadlineInterceptor()] } },
  );
  return { client: createClient(Health, transport), release };
}

describe("deadline interceptor", () => {
  test("when the deadline header passes while the handler waits, then DeadlineExceeded at the deadline", async () => {
    const { client, release } = stuckHealth("fail");
    const started = performance.now();
    try {
      const err = await client.check({ service: "" }, { headers: { "connect-timeout-ms": "200" } }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
      expect(performance.now() - started).toBeLessThan(2000);
    } finally {
      // The abandoned handler then fails: its failure is dropped, not an unhandled rejection.
      release();
    }
  });

  test("when there is no deadline, then the handler's answer comes through unchanged", async () => {
    const { client, release } = stuckHealth("answer");
    const answer = client.check({ service: "" });
    release();
    expect((await answer).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });
});
