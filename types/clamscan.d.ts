// The part of the clamscan package (a clamd client) that Outpost uses.
declare module "clamscan" {
  import type { Readable } from "node:stream";

  interface ScanResult {
    isInfected: boolean | null;
    viruses: string[];
    resultString?: string;
    timeout?: boolean;
  }

  interface Options {
    removeInfected?: boolean;
    debugMode?: boolean;
    scanLog?: string | null;
    clamscan?: { active?: boolean };
    clamdscan?: {
      host?: string;
      port?: number;
      socket?: string | false;
      timeout?: number;
      localFallback?: boolean;
      active?: boolean;
      bypassTest?: boolean;
    };
    preference?: "clamdscan" | "clamscan";
  }

  class NodeClam {
    init(options: Options): Promise<NodeClam>;
    scanStream(stream: Readable): Promise<ScanResult>;
    getVersion(): Promise<string>;
  }

  export default NodeClam;
}
