// The next step of one link, decided from what the two sites hold (pure): Skupper's
// grant → token → Link flow, and the ways it goes wrong — a grant that expires or is
// used up before its token is redeemed, a token left pointing at an earlier grant, a Link
// that disappears after its token was redeemed.
import type { AccessGrant, AccessToken, Link, Site } from "./skupper.ts";
import { skupperError, skupperReady } from "./skupper.ts";
import type { LinkState } from "./status.ts";

export type LinkAction =
  | { kind: "none" }
  /** Create the AccessGrant on the accepting site. */
  | { kind: "createGrant" }
  /** Create the AccessToken on the initiating site from the grant's status. */
  | { kind: "createToken"; url: string; code: string; ca: string; grantUid: string }
  /** Delete the token only (it names an earlier grant). */
  | { kind: "deleteToken" }
  /** Delete the grant only (expired or used before any token was made). */
  | { kind: "deleteGrant" }
  /** Start over: delete the token, the Links and credentials made of it, and the grant. */
  | { kind: "restart" };

export interface LinkStep {
  state: LinkState;
  message?: string;
  action: LinkAction;
}

export interface LinkInput {
  from: string;
  to: string;
  /** The Links Skupper made of the token (named after it). */
  links: Link[];
  token?: AccessToken;
  grant?: AccessGrant;
  /** The accepting site. */
  site?: Site;
  now: Date;
}

const none: LinkAction = { kind: "none" };

/** A redemption failure that a new grant cures (Skupper's grant server answered 404). */
const needsNewGrant = (err: string): boolean => /\b404\b|no such claim|no such access granted/i.test(err);

export function nextLinkStep(input: LinkInput): LinkStep {
  const { from, to, links, token, grant, site, now } = input;
  const step = (state: LinkState, message: string | undefined, action: LinkAction = none): LinkStep => ({
    state,
    ...(message ? { message } : {}),
    action,
  });

  // Up: whatever happened before, a ready Link is the goal.
  if (links.some((l) => skupperReady(l))) return step("connected", undefined);
  if (links.length > 0) {
    const err = links.map((l) => skupperError(l)).find(Boolean);
    return err ? step("failed", `link: ${err}`) : step("pending", "link is connecting");
  }
  if (token?.status?.redeemed) {
    // Redeemed, but no Link (deleted by hand, or its site was recreated): start over.
    return step("pending", "the link went missing after redemption; issuing a new access grant", {
      kind: "restart",
    });
  }

  // The accepting site must be ready to accept links.
  if (!skupperReady(site) || (site?.status?.endpoints ?? []).length === 0) {
    const err = skupperError(site);
    const detail = site?.status?.message ? ` (${site.status.message})` : "";
    return err
      ? step("failed", `site on ${to}: ${err}`)
      : step("pending", `waiting for the site on ${to} to accept links${detail}`);
  }
  if (!grant) return step("pending", `issuing an access grant on ${to}`, { kind: "createGrant" });

  const gs = grant.status;
  const expired = gs?.expirationTime !== undefined && Date.parse(gs.expirationTime) <= now.getTime();
  const usedUp = (gs?.redemptions ?? 0) >= Math.max(1, grant.spec.redemptionsAllowed ?? 1);

  if (token) {
    const err = skupperError(token);
    if (gs?.url && token.spec.url !== gs.url) {
      return step("pending", "replacing an access token of an earlier grant", { kind: "deleteToken" });
    }
    if (err && (expired || usedUp || needsNewGrant(err))) {
      return step("pending", `access grant could not be redeemed (${err}); issuing a new one`, {
        kind: "restart",
      });
    }
    if (err) return step("failed", `redeeming the access token on ${from}: ${err}`);
    if (expired) {
      return step("pending", "access grant expired before redemption; issuing a new one", {
        kind: "restart",
      });
    }
    return step("pending", `redeeming the access token on ${from}`);
  }

  if (expired || usedUp) {
    return step("pending", `access grant on ${to} ${expired ? "expired" : "was used"}; issuing a new one`, {
      kind: "deleteGrant",
    });
  }
  if (!skupperReady(grant) || !gs?.url || !gs.code || !gs.ca) {
    const err = skupperError(grant);
    return err
      ? step("failed", `access grant on ${to}: ${err}`)
      : step("pending", `waiting for Skupper to process the access grant on ${to}`);
  }
  return step("pending", `access token created on ${from}`, {
    kind: "createToken",
    url: gs.url,
    code: gs.code,
    ca: gs.ca,
    grantUid: grant.metadata.uid ?? "",
  });
}
