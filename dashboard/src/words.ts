// Events in the words an operator reads at a glance: "speedy637 gifted 20 subs to Pixel_Pioneer".
// Raw EventSub type names are for the details view only (typeLabel names them for lists).
import type { FeedEvent } from "./types";

const count = new Intl.NumberFormat("en");

function n(value: number | undefined, one: string, many: string): string {
  const v = value ?? 0;
  return `${count.format(v)} ${v === 1 ? one : many}`;
}

function tier(t: string | undefined): string {
  // Twitch says "1000", "2000", "3000" (Prime subs arrive as tier 1000)
  return t === "2000" ? " (tier 2)" : t === "3000" ? " (tier 3)" : "";
}

function duration(seconds: number | undefined): string {
  if (seconds === undefined) return "";
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  const h = Math.floor(seconds / 3600), m = Math.round((seconds % 3600) / 60);
  return m ? `${h} h ${m} min` : `${h} h`;
}

function quoted(text: string | undefined, max = 120): string {
  if (!text) return "";
  const t = text.replace(/\s+/g, " ").trim();
  return t.length > max ? `“${t.slice(0, max - 1)}…”` : `“${t}”`;
}

function who(name: string | undefined, login: string | undefined, fallback: string): string {
  return name || login || fallback;
}

/** What happened, with the creator named where a sentence needs them (`to <creator>`). */
function words(e: FeedEvent, creator: string | null): string {
  const s = e.summary;
  const actor = who(s.actor_name, s.actor_login, "Someone");
  const to = creator ? ` to ${creator}` : "";
  const on = creator ? ` on ${creator}'s channel` : "";
  const subject = creator ?? "The channel";
  switch (e.type) {
    case "stream.online":
      return `${subject} went live${s.outcome && s.outcome !== "live" ? ` (${s.outcome})` : ""}`;
    case "stream.offline":
      return `${subject} went offline`;
    case "channel.update": {
      const parts = [s.title && `title ${quoted(s.title, 80)}`, s.category_name && `category ${s.category_name}`].filter(Boolean);
      return `${subject} changed ${parts.length ? parts.join(" and ") : "stream details"}`;
    }
    case "channel.raid":
      return s.outcome === "outgoing"
        ? `${subject} raided ${who(s.target_name, s.target_login, "another channel")} with ${n(s.amount, "viewer", "viewers")}`
        : `Raid from ${actor} with ${n(s.amount, "viewer", "viewers")}${creator ? ` into ${creator}` : ""}`;
    case "channel.follow":
      return `${actor} followed${creator ? ` ${creator}` : ""}`;
    case "channel.subscribe":
      return s.outcome === "gift"
        ? `${actor} received a gift sub${tier(s.tier)}${creator ? ` for ${creator}` : ""}`
        : `${actor} subscribed${tier(s.tier)}${to}`;
    case "channel.subscription.gift": {
      const giver = s.outcome === "anonymous" ? "An anonymous viewer" : actor;
      return `${giver} gifted ${n(s.amount, "sub", "subs")}${tier(s.tier)}${to}`;
    }
    case "channel.subscription.message":
      return `${actor} resubscribed${tier(s.tier)}${s.amount ? ` for ${n(s.amount, "month", "months")}` : ""}${s.message_text ? `: ${quoted(s.message_text)}` : ""}`;
    case "channel.cheer": {
      const giver = s.outcome === "anonymous" ? "An anonymous viewer" : actor;
      return `${giver} cheered ${n(s.amount, "bit", "bits")}${to}${s.message_text ? `: ${quoted(s.message_text)}` : ""}`;
    }
    case "channel.hype_train.begin":
      return `Hype train started${creator ? ` for ${creator}` : ""}${s.level ? ` at level ${s.level}` : ""}`;
    case "channel.hype_train.progress":
      return `Hype train${creator ? ` for ${creator}` : ""} at level ${s.level ?? 1}${s.amount ? `, ${count.format(s.amount)} points` : ""}`;
    case "channel.hype_train.end":
      return `Hype train ended${creator ? ` for ${creator}` : ""} at level ${s.level ?? 1}`;
    case "channel.ban": {
      const target = who(s.target_name, s.target_login, "a viewer");
      const by = s.actor_login || s.actor_name ? ` by ${who(s.actor_name, s.actor_login, "")}` : "";
      const reason = s.message_text ? `: ${quoted(s.message_text, 80)}` : "";
      return s.outcome === "timeout"
        ? `${target} timed out${s.duration_seconds ? ` for ${duration(s.duration_seconds)}` : ""}${by}${reason}`
        : `${target} banned${by}${reason}`;
    }
    case "channel.ad_break.begin":
      return `${s.outcome === "automatic" ? "Automatic ad" : "Ad"} break${s.duration_seconds ? ` of ${duration(s.duration_seconds)}` : ""}${on}`;
    case "channel.chat.message":
      return `${actor}: ${quoted(s.message_text) || "(no text)"}`;
    case "channel.poll.begin":
      return `Poll started: ${quoted(s.title, 80) || "untitled"}`;
    case "channel.poll.end":
      return `Poll ended: ${quoted(s.title, 80) || "untitled"}${s.outcome ? ` (${s.outcome.replace(/^completed: /, "winner: ")})` : ""}`;
    case "channel.prediction.begin":
      return `Prediction started: ${quoted(s.title, 80) || "untitled"}`;
    case "channel.prediction.end":
      return `Prediction ended: ${quoted(s.title, 80) || "untitled"}${s.outcome ? ` (${s.outcome.replace(/^resolved: /, "winner: ")})` : ""}`;
    case "channel.shoutout.create":
      return `${creator ?? "The channel"} gave a shoutout to ${who(s.target_name, s.target_login, "another channel")}${s.amount ? ` in front of ${n(s.amount, "viewer", "viewers")}` : ""}`;
    case "user.authorization.revoke":
      return `${creator ?? actor} revoked the authorization for this control room`;
    case "subscription.revoked":
      return `Twitch ended the ${typeLabel(s.title ?? "").toLowerCase() || "event"} subscription${creator ? ` for ${creator}` : ""}${s.outcome ? ` (${s.outcome.replaceAll("_", " ")})` : ""}`;
    default:
      return `${typeLabel(e.type)}${creator ? ` on ${creator}'s channel` : ""}${s.actor_login ? ` by ${actor}` : ""}`;
  }
}

/** The whole sentence, with the creator's name (for the feed and incident details). */
export function sentence(e: FeedEvent, creatorName: string | null): string {
  return words(e, creatorName);
}

/** Without the creator's name, for a line on that creator's own tile. */
export function short(e: FeedEvent): string {
  return words(e, null);
}

const TOPIC_LABELS: Record<string, string> = {
  stream: "Stream",
  audience: "Audience",
  monetization: "Money",
  moderation: "Moderation",
  engagement: "Chat & engagement",
  platform: "Platform",
  other: "Other",
};

export function topicLabel(topic: string): string {
  return TOPIC_LABELS[topic] ?? topic;
}

const TYPE_LABELS: Record<string, string> = {
  "stream.online": "Went live",
  "stream.offline": "Went offline",
  "channel.update": "Title or category change",
  "channel.raid": "Raid",
  "channel.follow": "Follow",
  "channel.subscribe": "Subscription",
  "channel.subscription.gift": "Gift subs",
  "channel.subscription.message": "Resubscription",
  "channel.cheer": "Cheer (bits)",
  "channel.hype_train.begin": "Hype train start",
  "channel.hype_train.progress": "Hype train progress",
  "channel.hype_train.end": "Hype train end",
  "channel.ban": "Ban or timeout",
  "channel.ad_break.begin": "Ad break",
  "channel.chat.message": "Chat message",
  "channel.poll.begin": "Poll start",
  "channel.poll.end": "Poll end",
  "channel.prediction.begin": "Prediction start",
  "channel.prediction.end": "Prediction end",
  "channel.shoutout.create": "Shoutout",
  "user.authorization.revoke": "Authorization revoked",
  "subscription.revoked": "Subscription ended by Twitch",
};

/** A type's name for people ("Gift subs"); an unknown type reads as its own words. */
export function typeLabel(type: string): string {
  if (TYPE_LABELS[type]) return TYPE_LABELS[type];
  const words = type.replace(/^(channel|user|stream)\./, "").replace(/[._]/g, " ").trim();
  return words ? words[0].toUpperCase() + words.slice(1) : type;
}
