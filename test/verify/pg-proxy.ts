// A TCP proxy in front of a PostgreSQL, for a replica's LISTEN connection: the test cuts it
// (every connection through it drops, new ones are refused) and restores it at will, so a
// replica loses its change notifications exactly when the test says, and comes back when it says.
import { createConnection, createServer, type Server, type Socket } from "node:net";

/** The proxy: `url` reaches the database through it. */
export type PgProxy = {
  readonly url: string;
  /** Drops every connection through the proxy and refuses new ones until restore(). */
  cut(): void;
  /** Refuses new connections until restore(), keeping the open ones. */
  refuseNew(): void;
  /** Accepts connections again. */
  restore(): void;
  close(): Promise<void>;
};

/** Starts a proxy on 127.0.0.1 in front of `databaseUrl` (a TCP URL, or the embedded server's socket URL). */
export async function startPgProxy(databaseUrl: string): Promise<PgProxy> {
  const target = new URL(databaseUrl);
  // The embedded server listens on a Unix socket only: ?host=<folder>, the file is .s.PGSQL.5432.
  const socketDir = target.searchParams.get("host");
  const connectTarget = () =>
    socketDir?.startsWith("/") === true
      ? createConnection({ path: `${socketDir}/.s.PGSQL.${target.port || "5432"}` })
      : createConnection({ host: target.hostname, port: Number(target.port || "5432") });
  const open = new Set<Socket>();
  let refusing = false;
  const server: Server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connectTarget();
    open.add(client);
    open.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the proxy has no port");
  const url = new URL(databaseUrl);
  url.hostname = "127.0.0.1";
  url.port = String(address.port);
  url.searchParams.delete("host");
  return {
    url: url.toString(),
    cut() {
      refusing = true;
      for (const socket of open) socket.destroy();
      open.clear();
    },
    refuseNew() {
      refusing = true;
    },
    restore() {
      refusing = false;
    },
    async close() {
      refusing = true;
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
