// What a creator's consent leaves of its EventSub subscriptions, in one word and one line:
// the wall's tile and the creators page say the same thing.
import type { Authorization, SubscriptionLabels } from "./types";

export type LinkState = "healthy" | "partial" | "pending" | "not-connected" | "disconnected";

export interface Link {
  state: LinkState;
  headline: string;
  detail: string | null;
  brief: string | null; // the detail for a tile: the first few labels, then "+N more"
}

const BRIEF = 3;

function listed(labels: string[], brief: boolean): string {
  if (!brief || labels.length <= BRIEF + 1) return labels.join(", ");
  return `${labels.slice(0, BRIEF).join(", ")} +${labels.length - BRIEF} more`;
}

const HEADLINES: Record<LinkState, string> = {
  healthy: "Subscriptions healthy",
  partial: "Partly subscribed",
  pending: "Setting up subscriptions",
  "not-connected": "Not connected to Twitch",
  disconnected: "Disconnected",
};

export function linkOf(
  authorization: Authorization | undefined,
  subs: SubscriptionLabels | undefined,
): Link | null {
  if (!authorization && !subs) return null; // an API without consent: say nothing
  const needs = subs?.needs_authorization ?? [];
  const failing = subs?.failing ?? [];
  const enabled = subs?.enabled ?? [];
  const pending = subs?.pending ?? [];
  const say = (brief: boolean) => {
    const lines = [
      needs.length ? `needs authorization: ${listed(needs, brief)}` : "",
      failing.length ? `failing: ${listed(failing, brief)}` : "",
    ].filter(Boolean);
    return lines.length ? lines.join("; ") : null;
  };
  const detail = say(false);
  const brief = say(true);
  let state: LinkState;
  if (authorization?.status === "disconnected") {
    const revoked = "authorization revoked; send a new connect link";
    return { state: "disconnected", headline: HEADLINES.disconnected, detail: revoked, brief: revoked };
  } else if (authorization?.status === "not_connected" && !enabled.length) state = "not-connected";
  else if (needs.length || failing.length || authorization?.status === "partial") state = "partial";
  else if (pending.length && !enabled.length) state = "pending";
  else state = enabled.length ? "healthy" : "pending";
  if (state === "not-connected" && !detail) {
    const hint = "send the creator a connect link";
    return { state, headline: HEADLINES[state], detail: hint, brief: hint };
  }
  return { state, headline: HEADLINES[state], detail, brief };
}

export function authorizationText(a: Authorization | undefined): string {
  if (!a) return "";
  switch (a.status) {
    case "connected":
      return `Connected${a.granted_at ? ` ${new Date(a.granted_at).toLocaleDateString()}` : ""}`;
    case "partial":
      return "Connected, some scopes missing";
    case "disconnected":
      return `Disconnected${a.revoked_at ? ` ${new Date(a.revoked_at).toLocaleString()}` : ""}`;
    default:
      return "Not connected";
  }
}
