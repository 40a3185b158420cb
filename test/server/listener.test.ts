// The one-port listener on its own: protocol detection and graceful shutdown, with a
// handler whose speed the test controls.
import { afterEach, describe, expect, test } from "@jest/globals";
import http2 from "node:http2";
import { Writable } from "node:stream";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { listen, type Listener, type RequestHandler } from "../../src/server/listener.ts";

const limits = loadConfig({}).limits;
const logger = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, cb) => cb() }) });
let listener: Listener | undefined;
afterEach(async () => {
  await listener?.close(100);
  listener = undefined;
});

/** Requests that have reached the handler so far, and a way to wait until `n` have. */
let entered = 0;
let onEnter: (() => void) | undefined;
function whenEntered(n: number): Promise<void> {
  return new Promise((resolve) => {
    onEnter = () => {
      if (entered >= n) resolve();
    };
    onEnter();
  });
}

/** Answers with the HTTP version after `delayMs`. */
function slowHandler(delayMs: number): RequestHandler {
  entered = 0;
  return (req, res) => {
    entered += 1;
    onEnter?.();
    const timer = setTimeout(() => res.end(`http/${req.httpVersion}`), delayMs);
    // A connection cut before the answer leaves no timer behind to hold the test process.
    res.once("close", () => clearTimeout(timer));
  };
}

function h2Get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const req = session.request({ ":path": "/" });
    let body = "";
    let status = 0;
    req.on("response", (headers) => (status = Number(headers[":status"])));
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      session.close();
      resolve({ status, body });
    });
    req.on("error", reject);
    req.end();
  });
}

describe("one port", () => {
  test("when a client speaks HTTP/1.1 or HTTP/2 cleartext to the same port, then both reach the handler", async () => {
    listener = await listen({ host: "127.0.0.1", port: 0, handler: slowHandler(0), logger, limits });
    const url = `http://127.0.0.1:${listener.port}`;
    expect(await (await fetch(url)).text()).toBe("http/1.1");
    expect(await h2Get(url)).toEqual({ status: 200, body: "http/2.0" });
  });
});

describe("graceful shutdown", () => {
  test("when close() is called with calls in flight, then they finish, and new connections are refused", async () => {
    listener = await listen({ host: "127.0.0.1", port: 0, handler: slowHandler(300), logger, limits });
    const url = `http://127.0.0.1:${listener.port}`;
    const h1 = fetch(url).then((r) => r.text());
    const h2 = h2Get(url);
    await whenEntered(2);
    const closed = listener.close(5_000);
    expect(await h1).toBe("http/1.1");
    expect((await h2).body).toBe("http/2.0");
    await closed;
    await expect(fetch(url)).rejects.toThrow();
    listener = undefined;
  });

  test("when in-flight calls outlast the grace period, then close() still returns", async () => {
    listener = await listen({ host: "127.0.0.1", port: 0, handler: slowHandler(10_000), logger, limits });
    const url = `http://127.0.0.1:${listener.port}`;
    const pending = fetch(url).catch(() => "dropped");
    await whenEntered(1);
    const started = Date.now();
    await listener.close(200);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await pending).toBe("dropped");
    listener = undefined;
  });
});
