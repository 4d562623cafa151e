// The shapes the relay and the REST API send (docs/realtime.md, docs/api.md).
export type Summary = Partial<{
  actor_login: string;
  actor_name: string;
  target_login: string;
  amount: number;
  tier: string;
  title: string;
  category_name: string;
  duration_seconds: number;
  message_text: string;
  outcome: string;
  level: number;
}>;

export interface FeedEvent {
  seq: number;
  type: string;
  version: string;
  topic: string;
  creator_id: string | null;
  broadcaster_user_id: string;
  occurred_at: string;
  summary: Summary;
}

export interface CreatorState {
  creator_id: string;
  twitch_user_id: string;
  login: string;
  display_name: string;
  status: string;
  title: string | null;
  category_name: string | null;
  live_since: string | null;
  last_event_at: string | null;
  authorization_revoked: boolean;
  labels?: string[];
}

export interface Branding {
  primary_color?: string | null;
  accent_color?: string | null;
  logo_key?: string | null;
  logo_url?: string | null;
}

export interface Company {
  id: string;
  name: string;
  slug: string;
  branding: Branding;
}

export interface Me {
  user_id: string;
  subject: string;
  role: "viewer" | "operator" | "admin" | "owner";
  company: Company;
}

export type Connection = "connecting" | "live" | "reconnecting" | "catching up" | "resynced" | "refused";

export const TOPICS = ["stream", "audience", "monetization", "moderation", "engagement", "platform"] as const;
export const ROLES = ["viewer", "operator", "admin", "owner"] as const;

export function atLeast(role: string, minimum: string): boolean {
  return ROLES.indexOf(role as never) >= ROLES.indexOf(minimum as never);
}
