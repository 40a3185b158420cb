#!/usr/bin/env node
// Entry point of the `keyward` command. keyward runs its TypeScript directly on Node 24,
// pinned as the `node` npm dependency; if an older system Node started this file, re-run
// the CLI on the pinned one (forwarding signals so shutdown stays graceful).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
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
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
