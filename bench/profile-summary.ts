// Summarizes a V8 .cpuprofile (from `node --cpu-prof`, e.g. keyward under
// BENCH_KEYWARD_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR" npm run bench): the functions with
// the most self time, self time by module, and optionally the callers of one function.
// Usage: node bench/profile-summary.ts FILE.cpuprofile [TOP=25] [FUNCTION-NAME [DEPTH=8]]
// Percentages are of all samples, "(idle)" included: a server that is idle part of the time
// was not the bottleneck of the run.
import { readFileSync } from "node:fs";

type CallFrame = { functionName: string; url: string; lineNumber: number };
type ProfileNode = { id: number; callFrame: CallFrame; children?: number[] };
type Profile = { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };

const [file, topArg, callersOf, depthArg] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write("usage: node bench/profile-summary.ts FILE.cpuprofile [TOP] [FUNCTION-NAME [DEPTH]]\n");
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const top = Number(topArg ?? 25);
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parents = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parents.set(c, n.id);

/** Microseconds per sampled node. */
const selfTime = new Map<number, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  selfTime.set(id, (selfTime.get(id) ?? 0) + dt);
  total += dt;
});

const shortUrl = (url: string) => url.replace(/^.*node_modules\//, "nm/").replace(/^file:\/\/.*?\/(src|bench|gen)\//, "$1/");
function moduleOf(url: string): string {
  if (url === "") return "(native / VM)";
  if (url.startsWith("node:")) return "node: internals";
  const inModules = url.split("node_modules/").slice(1).pop();
  if (inModules !== undefined) return `nm/${inModules.split("/").slice(0, inModules.startsWith("@") ? 2 : 1).join("/")}`;
  return shortUrl(url);
}
const frameName = (f: CallFrame) => `${f.functionName || "(anonymous)"} ${shortUrl(f.url)}:${f.lineNumber + 1}`;
const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
function add(map: Map<string, number>, key: string, us: number): void {
  map.set(key, (map.get(key) ?? 0) + us);
}

const byFunction = new Map<string, number>();
const byModule = new Map<string, number>();
for (const [id, us] of selfTime) {
  const frame = nodes.get(id)!.callFrame;
  add(byFunction, frameName(frame), us);
  add(byModule, moduleOf(frame.url), us);
}
const sorted = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);

console.log(`${(total / 1e6).toFixed(1)} s sampled`);
console.log("-- self time by function");
for (const [k, us] of sorted(byFunction, top)) console.log(pct(us), k);
console.log("-- self time by module");
for (const [k, us] of sorted(byModule, 15)) console.log(pct(us), k);

if (callersOf !== undefined) {
  const depth = Number(depthArg ?? 8);
  const stacks = new Map<string, number>();
  for (const [id, us] of selfTime) {
    if (nodes.get(id)!.callFrame.functionName !== callersOf) continue;
    const chain: string[] = [];
    for (let p = parents.get(id); p !== undefined && chain.length < depth; p = parents.get(p)) chain.push(frameName(nodes.get(p)!.callFrame));
    add(stacks, chain.join(" < "), us);
  }
  console.log(`-- callers of ${callersOf}`);
  for (const [k, us] of sorted(stacks, 8)) console.log(pct(us), k);
}
