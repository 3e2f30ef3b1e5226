// Malware scanning with ClamAV's clamd (INSTREAM over TCP, through the clamscan package).
// Verdicts are cached by content digest, so the same chart or file is scanned once.
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import NodeClam from "clamscan";
import { setCondition, type Condition } from "../runtime/conditions.ts";
import { ReconcileError } from "../runtime/reconcile.ts";

export type ScanMode = "enforce" | "permissive" | "off";

export interface ScanVerdict {
  result: "Clean" | "Infected" | "Error" | "Skipped";
  /** The signature found, when Infected. */
  signature?: string;
  /** Why, when Error or Skipped. */
  message?: string;
  /** sha256 of the content, "sha256:<hex>". */
  digest: string;
}

export interface Scanner {
  readonly mode: ScanMode;
  scan(content: Buffer): Promise<ScanVerdict>;
}

export interface ClamdOptions {
  host: string;
  port: number;
  mode?: ScanMode;
  timeoutMs?: number;
  /** Verdicts kept in memory, by digest. Default 10,000. */
  cacheSize?: number;
}

export const digestOf = (content: Buffer): string =>
  `sha256:${createHash("sha256").update(content).digest("hex")}`;

export class ClamdScanner implements Scanner {
  readonly mode: ScanMode;
  private client: Promise<NodeClam> | undefined;
  private readonly cache = new Map<string, ScanVerdict>();

  constructor(private readonly options: ClamdOptions) {
    this.mode = options.mode ?? "enforce";
  }

  private connect(): Promise<NodeClam> {
    this.client ??= new NodeClam()
      .init({
        removeInfected: false,
        debugMode: false,
        scanLog: null,
        clamscan: { active: false },
        clamdscan: {
          host: this.options.host,
          port: this.options.port,
          socket: false,
          timeout: this.options.timeoutMs ?? 60_000,
          localFallback: false,
          active: true,
        },
        preference: "clamdscan",
      })
      .catch((err: unknown) => {
        this.client = undefined;
        throw err;
      });
    return this.client;
  }

  async scan(content: Buffer): Promise<ScanVerdict> {
    const digest = digestOf(content);
    if (this.mode === "off") return { result: "Skipped", message: "scanning is turned off", digest };
    const cached = this.cache.get(digest);
    if (cached) return cached;
    let verdict: ScanVerdict;
    try {
      const clam = await this.connect();
      const res = await clam.scanStream(Readable.from([content]));
      if (res.timeout) throw new Error("the scan timed out");
      verdict = res.isInfected
        ? { result: "Infected", signature: res.viruses.join(", ") || "unknown", digest }
        : { result: "Clean", digest };
    } catch (err) {
      this.client = undefined;
      const why = err instanceof Error ? err.message : String(err);
      return {
        result: "Error",
        message: `clamd at ${this.options.host}:${this.options.port} could not scan: ${why}`,
        digest,
      };
    }
    this.cache.set(digest, verdict);
    const max = this.options.cacheSize ?? 10_000;
    while (this.cache.size > max) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.delete(oldest);
    }
    return verdict;
  }
}

interface ScannedStatus {
  conditions?: Condition[];
  scan?: { result?: string; signature?: string; time?: string };
}

/**
 * Records a verdict in a status: `status.scan` and the Scanned condition. Returns the
 * sentence to stall with when the content is infected; throws a ReconcileError when it
 * could not be scanned and scanning is enforced.
 */
export function recordScan(
  status: ScannedStatus,
  verdict: ScanVerdict,
  mode: ScanMode,
  generation: number | undefined,
  what: string,
): string | undefined {
  status.scan = {
    result: verdict.result,
    time: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    ...(verdict.signature ? { signature: verdict.signature } : {}),
  };
  const g = generation !== undefined ? { observedGeneration: generation } : {};
  const set = (s: Condition["status"], reason: string, message: string): void => {
    status.conditions = setCondition(status.conditions, {
      type: "Scanned",
      status: s,
      reason,
      message,
      ...g,
    });
  };
  switch (verdict.result) {
    case "Infected":
      set("False", "MalwareFound", `${what} contains ${verdict.signature ?? "malware"}`);
      return `${what} contains ${verdict.signature ?? "malware"}; it cannot be used`;
    case "Error":
      set("Unknown", "ScannerUnavailable", verdict.message ?? "the scanner is unavailable");
      if (mode === "enforce")
        throw new ReconcileError(
          "ScannerUnavailable",
          `${what} could not be scanned: ${verdict.message ?? ""}`,
        );
      return undefined;
    case "Skipped":
      set("Unknown", "ScanningDisabled", "malware scanning is turned off");
      return undefined;
    case "Clean":
      set("True", "Clean", "no malware found");
      return undefined;
  }
}
