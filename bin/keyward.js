#!/usr/bin/env node
// Entry point of the `keyward` command. keyward runs its TypeScript directly on Node 24,
// pinned as the `node` npm dependency; if an older system Node started this file, re-run
// the CLI on the pinned one, passing signals on and exiting as it does, so that a
// supervisor that signals this process reaches the server.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { constants } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "src", "cli.ts");

if (Number(process.versions.node.split(".")[0]) >= 24) {
  const { main } = await import(pathToFileURL(cli).href);
  main(process.argv.slice(2));
} else {
  const pinned = join(root, "node_modules", "node", "bin", "node");
  if (!existsSync(pinned)) {
    console.error(`keyward: needs Node 24 (this is ${process.version}); run "npm ci" first to install the pinned Node`);
    process.exit(1);
  }
  const child = spawn(pinned, [cli, ...process.argv.slice(2)], { stdio: "inherit" });
  const forwarded = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const signal of forwarded) process.on(signal, () => child.kill(signal));
  // Under npm or npx, this process runs inside `sh -c`: a SIGTERM sent to npm ends the
  // shell and never reaches here. When the parent changes (this process was orphaned),
  // stop the server as if signalled.
  if (process.env.npm_lifecycle_event !== undefined) {
    const parent = process.ppid;
    const timer = setInterval(() => {
      if (process.ppid === parent) return;
      clearInterval(timer);
      child.kill("SIGTERM");
    }, 500);
    timer.unref();
  }
  child.on("exit", (code, signal) => {
    if (signal === null) process.exit(code ?? 1);
    // Die of the same signal, as a shell would report it.
    for (const s of forwarded) process.removeAllListeners(s);
    process.kill(process.pid, signal);
    process.exit(128 + (constants.signals[signal] ?? 0));
  });
}
