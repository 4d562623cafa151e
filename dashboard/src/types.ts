// The shapes the relay and the REST API send (docs/realtime.md, docs/api.md).
import type { components } from "./schema";

// The REST API's payloads are generated from /api/openapi.json into schema.ts
// (`python tools/api_types.py`; `make check` fails when it is stale): name them here, never retype them.
type Schemas = components["schemas"];
export type Branding = Schemas["Branding"];
export type Company = Schemas["CompanyOut"];
export type Me = Schemas["MeOut"];
export type Role = Me["role"];
// what the creator granted our Twitch client, and what that leaves of its subscriptions
export type Authorization = Schemas["CreatorAuthorization"];
export type SubscriptionLabels = Schemas["CreatorSubscriptions"];
export type Creator = Schemas["CreatorOut"];
export type CreatorIn = Schemas["CreatorIn"];
export type CreatorPatch = Schemas["CreatorPatch"];
export type CompanyPatch = Schemas["CompanyPatch"];
export type LogoUploadIn = Schemas["LogoUploadIn"];
export type LogoUpload = Schemas["LogoUploadOut"];
export type LogoConfirmIn = Schemas["LogoConfirmIn"];
export type Member = Schemas["MemberOut"];
export type MemberPatch = Schemas["MemberPatch"];
export type SubscriptionHealth = Schemas["SubscriptionHealth"];
export type AckIn = Schemas["AckIn"];
export type AuditPage = Schemas["AuditPage"];
export type ConnectLink = Schemas["ConnectLinkOut"];
export type InvitationIn = Schemas["InvitationIn"];
export type Invitation = Schemas["InvitationOut"];
export type InvitationCreated = Schemas["InvitationCreated"];
export type Chain = Schemas["ChainOut"];

// What a summary may hold, by event type (the API declares it an open object).
export type Summary = Partial<{
  actor_login: string;
  actor_name: string;
  target_login: string;
  target_name: string;
  amount: number;
  tier: string;
  title: string;
  category_name: string;
  duration_seconds: number;
  message_text: string;
  outcome: string;
  level: number;
}>;

// An event as the relay sends it and as GET /api/events lists it.
export type FeedEvent = Omit<Schemas["EventOut"], "summary"> & { summary: Summary };
export type EventsPage = Omit<Schemas["EventsPage"], "items"> & { items: FeedEvent[] };

// A creator's live state as the relay sends it (not part of the REST API).
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
  // the audience pulse's newest count (null: no sample yet, or offline)
  viewers?: number | null;
  viewers_at?: string | null;
  // from the REST roster (polled), not the socket
  authorization?: Authorization;
  subscriptions?: SubscriptionLabels;
  // the creator's Twitch profile image, and while live Twitch's preview image template (with
  // literal {width} and {height}); both from Helix through the pulse
  avatar_url?: string | null;
  preview_url?: string | null;
}

export type Connection = "connecting" | "live" | "reconnecting" | "catching up" | "resynced" | "refused";

export const TOPICS = ["stream", "audience", "monetization", "moderation", "engagement", "platform"] as const;
export const ROLES = ["viewer", "operator", "admin", "owner"] as const satisfies readonly Role[];

export function atLeast(role: string, minimum: string): boolean {
  return ROLES.indexOf(role as never) >= ROLES.indexOf(minimum as never);
}

// --- Incidents, detection rules, notification channels, the audience pulse (issue 17) --------
export type Incident = Schemas["IncidentOut"];
export type IncidentsPage = Schemas["IncidentsPage"];
export type Severity = Incident["severity"];
export type IncidentStatus = Incident["status"];
export const SEVERITIES = ["info", "warning", "critical"] as const satisfies readonly Severity[];

export function severityRank(s: string): number {
  return SEVERITIES.indexOf(s as Severity);
}

export type IncidentNote = Schemas["IncidentNoteOut"];
export type Delivery = Schemas["DeliveryOut"];
export type IncidentDetail = Omit<Schemas["IncidentDetail"], "events"> & { events: FeedEvent[] };
export type ParamSpec = Schemas["ParamSpecOut"];
export type RuleSetting = Schemas["RuleDefaults"];
export type Rule = Schemas["RuleOut"];
export type RuleIn = Schemas["RuleIn"];
export type QuietHours = Schemas["QuietHours"];
export type Channel = Schemas["ChannelOut"];
export type ChannelKind = Channel["kind"];
export type ChannelIn = Schemas["ChannelIn"];
export type ChannelPatch = Schemas["ChannelPatch"];

// [epoch seconds, viewers, or null while offline], oldest first (the generator reads the
// API's pair as a plain array)
export type ViewerSample = [number, number | null];
export type ViewersOut = Omit<Schemas["ViewersOut"], "creators"> & { creators: Record<string, ViewerSample[]> };

// the relay's "viewers" event, one per pulse run (not part of the REST API)
export interface ViewersUpdate {
  at: string;
  samples: { creator_id: string; viewers: number | null; live: boolean; preview_url?: string | null }[];
}
