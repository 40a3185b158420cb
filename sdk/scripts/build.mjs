// Builds @keyward/sdk into sdk/dist: compiles sdk/src and the generated code it needs
// (../gen/keyward/v1 and ../gen/google/rpc/error_details_pb.ts, copied in by tsc under
// dist/gen) to ESM .js + .d.ts with the repository's TypeScript. Run by `npm run build:sdk`
// and by `prepack`, so `npm pack` always ships compiled code. Exits non-zero on any error.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const sdk = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(sdk, "..", "node_modules", "typescript", "bin", "tsc");
if (!existsSync(tsc)) {
  console.error(`build: ${tsc} is missing; build the SDK from the keyward repository after npm ci`);
  process.exit(1);
}
rmSync(join(sdk, "dist"), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, "-p", join(sdk, "tsconfig.json")], { stdio: "inherit" });
// tsc rewrites relative `.ts` imports to `.js` in the emitted JavaScript, but not in the
// declarations: rewrite those too, so consumers type-check without allowImportingTsExtensions.
for (const entry of readdirSync(join(sdk, "dist"), { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith(".d.ts")) continue;
  const file = join(entry.parentPath, entry.name);
  const text = readFileSync(file, "utf8");
  const fixed = text.replace(/(from\s+["']\.{1,2}\/[^"']*?)\.ts(["'])/g, "$1.js$2").replace(/(import\(["']\.{1,2}\/[^"']*?)\.ts(["']\))/g, "$1.js$2");
  if (fixed !== text) writeFileSync(file, fixed);
}
for (const f of ["dist/sdk/src/index.js", "dist/sdk/src/index.d.ts", "dist/gen/google/rpc/error_details_pb.js", "dist/gen/keyward/v1/key_service_pb.d.ts"]) {
  if (!existsSync(join(sdk, f))) {
    console.error(`build: ${f} was not produced`);
    process.exit(1);
  }
}
