// Starts the local control plane (management + edge API servers) and keeps it running
// until Ctrl-C:   npm run controlplane -- --edges 2 [--dir DIR] [--base-port PORT]
import { parseArgs } from "node:util";
import { startControlPlane } from "../test/controlplane/index.ts";

const { values } = parseArgs({
  options: {
    edges: { type: "string", default: "2" },
    dir: { type: "string" },
    "base-port": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log("usage: npm run controlplane -- [--edges N] [--dir DIR] [--base-port PORT]");
  process.exit(0);
}
const edges = Number(values.edges);
if (!Number.isInteger(edges) || edges < 0) {
  console.error(`--edges must be a whole number ≥ 0, not "${values.edges}"`);
  process.exit(2);
}

const started = Date.now();
const cp = await startControlPlane({
  edges,
  dir: values.dir,
  basePort: values["base-port"] ? Number(values["base-port"]) : undefined,
  progress: (line) => {
    console.error(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`);
  },
});
console.log(`\nControl plane ready in ${((Date.now() - started) / 1000).toFixed(1)}s.`);
for (const c of cp.clusters) console.log(`  ${c.name.padEnd(12)} ${c.server}`);
console.log(`\n  export KUBECONFIG=${cp.kubeconfig}`);
console.log(`  ${cp.binaries.kubectl} --context edge-1 get namespaces`);
console.log(`\nLogs: ${cp.logDir}. Press Ctrl-C to stop.`);

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  console.error("stopping…");
  void cp.stop({ keep: values.dir !== undefined }).then(() => process.exit(0));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
setInterval(() => undefined, 1 << 30);
