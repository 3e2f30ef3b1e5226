// outpost-service-proxy: the HTTP and WebSocket proxy to web UIs and APIs on edge
// clusters (see server.ts), as a process of its own.
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { KubeClient } from "../runtime/client.ts";
import { createLogger } from "../runtime/manager.ts";
import { parseBaseDomain } from "./origin.ts";
import { ServiceProxy } from "./server.ts";

const usage = `usage: outpost-service-proxy [options]

  --base-domain=DOMAIN     required: each route is served on a host of its own under it,
                           <label>.DOMAIN (point a wildcard DNS name and certificate,
                           *.DOMAIN, and DOMAIN at the proxy). For a local test, use
                           localhost: browsers and curl resolve *.localhost to this machine
  --kubeconfig=PATH        kubeconfig of the management cluster (default: in-cluster, then $KUBECONFIG)
  --bind-address=ADDR      host:port to serve on (default: :8443)
  --rate=N                 requests a second per user (default: 50)
  --burst=N                requests a user may send at once (default: 100)
  --client-rate=N          new tokens (TokenReviews) a second per client address (default: 20)
  --client-burst=N         new tokens a client address may send at once (default: 40)
  --insecure-cookie        do not mark the session cookie Secure, and redirect to http://
                           (only behind plain HTTP, for tests)
  --argocd-namespace=NS    Argo CD's namespace, when projects deliver with Argo CD (default: none)
  --log-level=LEVEL        trace, debug, info, warn, error (default: info)

Routes: https://<label>.DOMAIN/<project>/<cluster>/<namespace>/<service>:<port>/<path>,
where <label> is derived from the route; a GET of the same path on DOMAIN redirects
there. POST /_login on a route's host sets that host's session cookie from a token;
/healthz. The client address is the connection's: no X-Forwarded-For is trusted.`;

function fail(message: string): never {
  console.error(`outpost-service-proxy: ${message}\n\n${usage}`);
  process.exit(2);
}

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  console.log(usage);
  process.exit(0);
}
let values;
try {
  ({ values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      kubeconfig: { type: "string" },
      "base-domain": { type: "string" },
      "bind-address": { type: "string", default: ":8443" },
      rate: { type: "string", default: "50" },
      burst: { type: "string", default: "100" },
      "client-rate": { type: "string", default: "20" },
      "client-burst": { type: "string", default: "40" },
      "insecure-cookie": { type: "boolean", default: false },
      "argocd-namespace": { type: "string" },
      "log-level": { type: "string", default: "info" },
    },
    strict: true,
  }));
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
const bind = /^(.*):(\d+)$/.exec(values["bind-address"]);
if (!bind) fail(`--bind-address: "${values["bind-address"]}" is not host:port`);
const rate = Number(values.rate);
const burst = Number(values.burst);
if (!(rate > 0) || !(burst >= 1)) fail("--rate and --burst must be positive numbers");
const clientRate = Number(values["client-rate"]);
const clientBurst = Number(values["client-burst"]);
if (!(clientRate > 0) || !(clientBurst >= 1))
  fail("--client-rate and --client-burst must be positive numbers");
const baseDomain = values["base-domain"];
if (!baseDomain) fail("--base-domain is required");
try {
  parseBaseDomain(baseDomain);
} catch (err) {
  fail(`--base-domain: ${err instanceof Error ? err.message : String(err)}`);
}

const kubeConfig = new KubeConfig();
if (values.kubeconfig) kubeConfig.loadFromFile(values.kubeconfig);
else kubeConfig.loadFromDefault();
// Access lines are written in batches of up to 4 KiB, at least every second, not one
// write(2) each: one a request showed as a tenth of the proxy's CPU time in profiles.
// They are flushed on exit.
const destination = pino.destination({ sync: false, minLength: 4096 });
setInterval(() => {
  destination.flush();
}, 1_000).unref();
const logger = createLogger("outpost-service-proxy", values["log-level"], destination);
const proxy = new ServiceProxy({
  management: new KubeClient(kubeConfig, { userAgent: "outpost-service-proxy" }),
  logger,
  baseDomain,
  rate,
  burst,
  clientRate,
  clientBurst,
  secureCookie: !values["insecure-cookie"],
  ...(values["argocd-namespace"] ? { argocdNamespace: values["argocd-namespace"] } : {}),
});
await proxy.listen(Number(bind[2]), bind[1] === "" || bind[1] === undefined ? "0.0.0.0" : bind[1]);
logger.info({ port: proxy.port }, "started");
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    logger.info({ signal }, "stopping");
    void proxy.close().then(() => {
      destination.flushSync();
      process.exit(0);
    });
  });
}
