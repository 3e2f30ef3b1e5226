#!/usr/bin/env node
// Entry point of the outpost-operator binary: runs operators/main.ts.
import { register } from "tsx/esm/api";

register();
await import("./main.ts");
