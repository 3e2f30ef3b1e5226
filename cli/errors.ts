// What the command line says when something fails: which object or server, what went
// wrong, and what to do - instead of a bare Node or HTTP error.
import { ApiError } from "../operators/runtime/client.ts";
import { CatalogError } from "../operators/catalog/format.ts";

const connectionCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET",
]);

function codeOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/** The message for `err` and the exit code: 1 for problems the user can fix, 2 otherwise. */
export function explain(err: unknown, server?: string): { message: string; exitCode: number } {
  const at = server ? ` ${server}` : "";
  if (err instanceof CatalogError) return { message: err.message, exitCode: 1 };
  if (err instanceof ApiError) {
    if (err.code === 401) {
      return {
        message: `the API server${at} does not accept your credentials (401 Unauthorized): log in again, or check the user of your kubeconfig context`,
        exitCode: 1,
      };
    }
    if (err.code === 403) {
      return {
        message: `${err.message}\n(ask an admin of the project for the role that allows it; docs/security.md lists the roles)`,
        exitCode: 1,
      };
    }
    if (err.code === 404 && err.message.includes("could not find the requested resource")) {
      return {
        message: `the API server${at} does not serve Outpost's API: install Outpost there (kubectl apply -k config/), or pick the management cluster with --context`,
        exitCode: 1,
      };
    }
    return { message: err.message, exitCode: 1 };
  }
  const code = codeOf(err);
  if (code?.startsWith("ERR_PARSE_ARGS")) {
    return {
      message: `${(err as Error).message.split(". To specify")[0] ?? ""}; see kubectl outpost --help`,
      exitCode: 2,
    };
  }
  if (code && connectionCodes.has(code)) {
    return {
      message: `cannot reach the API server${at} (${code}): check that the cluster is up and that --kubeconfig / --context name the right one`,
      exitCode: 1,
    };
  }
  if (code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) {
    return {
      message: `the API server${at} presented a certificate your kubeconfig does not trust (${code}): check the cluster's certificate-authority-data`,
      exitCode: 1,
    };
  }
  return { message: err instanceof Error ? err.message : String(err), exitCode: 2 };
}
