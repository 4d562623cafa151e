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
}

export type Connection = "connecting" | "live" | "reconnecting" | "catching up" | "resynced" | "refused";

export const TOPICS = ["stream", "audience", "monetization", "moderation", "engagement", "platform"] as const;
export const ROLES = ["viewer", "operator", "admin", "owner"] as const satisfies readonly Role[];

export function atLeast(role: string, minimum: string): boolean {
  return ROLES.indexOf(role as never) >= ROLES.indexOf(minimum as never);
}

// --- Incidents, detection rules, notification channels, the audience pulse (issue 17) --------
// Typed here from the contract until schema.ts is regenerated with these routes.
export type Severity = "info" | "warning" | "critical";
export type IncidentStatus = "open" | "acknowledged" | "resolved";
export const SEVERITIES = ["info", "warning", "critical"] as const satisfies readonly Severity[];

export function severityRank(s: string): number {
  return SEVERITIES.indexOf(s as Severity);
}

export interface Incident {
  id: string;
  number: number;
  creator_id: string | null;
  rule: string;
  severity: Severity;
  status: IncidentStatus;
  title: string;
  details: Record<string, unknown>;
  opened_at: string;
  updated_at: string;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
  resolved_at: string | null;
  resolved_by: string | null;
  resolution: string | null;
  assignee_user_id: string | null;
  event_count: number;
}

export interface IncidentsPage {
  items: Incident[];
  next_before?: number | null;
}

export interface IncidentNote {
  id: number;
  author_subject: string;
  body: string;
  created_at: string;
}

export type Transition = "opened" | "acknowledged" | "resolved" | "test";
export type DeliveryStatus = "pending" | "sending" | "delivered" | "failed" | "skipped";

export interface Delivery {
  id: string;
  channel_id: string;
  channel_name?: string | null;
  incident_id?: string | null;
  transition: Transition;
  status: DeliveryStatus;
  reason: string | null;
  attempts: number;
  last_status: number | null;
  created_at: string;
  delivered_at: string | null;
}

export interface IncidentDetail extends Incident {
  notes: IncidentNote[];
  events: FeedEvent[];
  deliveries: Delivery[];
}

export interface ParamSpec {
  name: string;
  label: string;
  minimum: number;
  maximum: number;
  unit: string;
}

export interface RuleSetting {
  enabled: boolean;
  severity: Severity;
  params: Record<string, number>;
}

export interface Rule extends RuleSetting {
  rule: string;
  title: string;
  description: string;
  defaults: RuleSetting;
  param_specs: ParamSpec[];
}

export type ChannelKind = "discord" | "slack" | "webhook";

export interface QuietHours {
  start: string;
  end: string;
  timezone: string;
}

export interface Channel {
  id: string;
  kind: ChannelKind;
  name: string;
  url_hint: string;
  min_severity: Severity;
  quiet_hours: QuietHours | null;
  mention: string | null;
  enabled: boolean;
  has_secret: boolean;
  created_at: string;
  updated_at: string;
}

export interface ChannelIn {
  kind: ChannelKind;
  name: string;
  url: string;
  secret?: string | null;
  min_severity: Severity;
  quiet_hours: QuietHours | null;
  mention: string | null;
  enabled: boolean;
}

export type ChannelPatch = Partial<Omit<ChannelIn, "kind">>;

// [epoch seconds, viewers, or null while offline], oldest first
export type ViewerSample = [number, number | null];

export interface ViewersOut {
  minutes: number;
  creators: Record<string, ViewerSample[]>;
}

// the relay's "viewers" event, one per pulse run
export interface ViewersUpdate {
  at: string;
  samples: { creator_id: string; viewers: number | null; live: boolean }[];
}
