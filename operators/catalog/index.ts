// The catalog operator: registries, applications, deployment packages and artifacts.
import type { Manager } from "../runtime/manager.ts";
import { registerApplications } from "./application.ts";
import { registerArtifacts } from "./artifact.ts";
import { registerPackages } from "./package.ts";
import { registerRegistries } from "./registry.ts";
import { ClamdScanner, type ScanMode, type Scanner } from "./scanner.ts";

export interface CatalogOptions {
  /** clamd's address, host:port. Required unless scanMode is off. */
  clamdAddress?: string;
  /** enforce (default): unscanned content is not Ready; permissive: it is, with a warning; off: no scanning. */
  scanMode?: ScanMode;
}

export function scannerFor(options: CatalogOptions): Scanner {
  const mode = options.scanMode ?? "enforce";
  if (mode === "off") return new ClamdScanner({ host: "", port: 0, mode });
  const m = /^(.+):(\d+)$/.exec(options.clamdAddress ?? "");
  if (!m) {
    throw new Error(
      `the catalog needs --clamd-address=host:port to scan for malware (got "${options.clamdAddress ?? ""}"), or --scan-mode=off`,
    );
  }
  return new ClamdScanner({ host: m[1] ?? "", port: Number(m[2]), mode });
}

export function registerCatalog(manager: Manager, options: CatalogOptions = {}): void {
  const scanner = scannerFor(options);
  registerRegistries(manager);
  registerApplications(manager, scanner);
  registerPackages(manager);
  registerArtifacts(manager, scanner);
}
