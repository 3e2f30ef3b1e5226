#!/usr/bin/env node
// kubectl plugin entry point (kubectl finds `kubectl-outpost` on PATH): runs cli/main.ts.
import process from "node:process";
import { register } from "tsx/esm/api";

register();
const { run } = await import("./main.ts");
process.exit(await run(process.argv.slice(2)));
