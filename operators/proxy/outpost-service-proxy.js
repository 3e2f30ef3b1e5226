#!/usr/bin/env node
// Entry point of the outpost-service-proxy binary: runs operators/proxy/main.ts.
import { register } from "tsx/esm/api";

register();
await import("./main.ts");
