// kubectl outpost's error messages: each names the server or object and what to do.
import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { describe, it } from "node:test";
import { explain } from "../../cli/errors.ts";
import { CatalogError } from "../../operators/catalog/format.ts";
import { ApiError } from "../../operators/runtime/client.ts";

const server = "https://mgmt.example:6443";

describe("kubectl outpost errors", () => {
  it("says the server cannot be reached, and what to check", () => {
    const err = Object.assign(new Error("fetch failed"), {
      cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
    });
    const e = explain(err, server);
    assert.equal(e.exitCode, 1);
    assert.match(e.message, /cannot reach the API server https:\/\/mgmt\.example:6443 \(ECONNREFUSED\)/);
    assert.match(e.message, /--kubeconfig \/ --context/);
  });

  it("explains refused credentials, missing rights and a cluster without Outpost", () => {
    assert.match(explain(new ApiError(401, "Unauthorized", "Unauthorized"), server).message, /log in again/);
    const forbidden = explain(
      new ApiError(403, "Forbidden", 'approvals.deploy.outpost.dev is forbidden: User "bob" cannot create'),
      server,
    );
    assert.match(forbidden.message, /User "bob" cannot create/);
    assert.match(forbidden.message, /docs\/security\.md/);
    assert.match(
      explain(new ApiError(404, "NotFound", "the server could not find the requested resource"), server)
        .message,
      /does not serve Outpost's API: install Outpost there \(kubectl apply -k config\/\)/,
    );
    assert.equal(
      explain(new ApiError(404, "NotFound", 'appdeployments "x" not found'), server).message,
      'appdeployments "x" not found',
    );
  });

  it("points bad options at --help, and passes the CLI's own messages through", () => {
    let parseError: unknown;
    try {
      parseArgs({ args: ["--bogus"], options: {} });
    } catch (err) {
      parseError = err;
    }
    assert.deepEqual(explain(parseError), {
      message: "Unknown option '--bogus'; see kubectl outpost --help",
      exitCode: 2,
    });
    assert.deepEqual(explain(new CatalogError("AppDeployment x not found in namespace y")), {
      message: "AppDeployment x not found in namespace y",
      exitCode: 1,
    });
  });
});
