#!/usr/bin/env node
// kubectl plugin entry point (kubectl finds `kubectl-outpost` on PATH): runs cli/main.ts.
import process from "node:process";
import console from "node:console";
import { register } from "tsx/esm/api";

register();
const { main } = await import("./main.ts");
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(err?.name === "CatalogError" ? 1 : 2);
  },
);
