-- Incident response: viewer samples from the audience pulse, detection rules per company,
-- incidents shared by the team (notes, linked events, assignee), notification channels with
-- encrypted webhook URLs, and one delivery row per (channel, incident transition).
-- depends: 0008.onboarding

-- --- the audience pulse ------------------------------------------------------------------
-- One sample per creator per pulse run for every company watching the broadcaster.
CREATE TABLE viewer_samples (
    company_id  uuid NOT NULL,
    creator_id  uuid NOT NULL,
    sampled_at  timestamptz NOT NULL,
    live        boolean NOT NULL,
    viewers     integer NOT NULL CHECK (viewers >= 0),
    stream_id   text,
    PRIMARY KEY (company_id, creator_id, sampled_at),
    FOREIGN KEY (company_id, creator_id) REFERENCES creators (company_id, id) ON DELETE CASCADE
);
ALTER TABLE viewer_samples ENABLE ROW LEVEL SECURITY;
ALTER TABLE viewer_samples FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON viewer_samples
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));
GRANT SELECT, INSERT, DELETE ON viewer_samples TO controlroom_app;

-- The newest sample on the creator row, for the wall and the roster.
ALTER TABLE creators ADD COLUMN viewers integer, ADD COLUMN viewers_at timestamptz;

-- Counting a creator's follows, chat messages and bans of the last minutes (spike rules).
CREATE INDEX events_company_creator_type_occurred
    ON events (company_id, creator_id, type, occurred_at);

-- --- detection rules ---------------------------------------------------------------------
-- Only a company's overrides are stored; the defaults live in controlroom/core/detection.py.
CREATE TABLE incident_rules (
    company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    rule        text NOT NULL CHECK (rule ~ '^[a-z_]{1,40}$'),
    enabled     boolean NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    params      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(params) = 'object'),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL,
    PRIMARY KEY (company_id, rule)
);
ALTER TABLE incident_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_rules FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incident_rules
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));
GRANT SELECT, INSERT, UPDATE, DELETE ON incident_rules TO controlroom_app;

-- --- incidents ---------------------------------------------------------------------------
-- dedup_key makes detection exact: the key is written in the transaction that stores the
-- cause, so a redelivered or replayed cause finds it and opens nothing.
CREATE TABLE incidents (
    company_id      uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    number          bigint NOT NULL,
    creator_id      uuid,
    rule            text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status          text NOT NULL DEFAULT 'open'
                        CHECK (status IN ('open', 'acknowledged', 'resolved')),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    details         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
    dedup_key       text NOT NULL,
    opened_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    resolved_by     text,          -- a subject, or 'auto' when the condition cleared
    resolution      text,
    assignee_user_id uuid,
    PRIMARY KEY (company_id, id),
    UNIQUE (company_id, dedup_key),
    UNIQUE (company_id, number),
    FOREIGN KEY (company_id, creator_id) REFERENCES creators (company_id, id) ON DELETE SET NULL (creator_id),
    FOREIGN KEY (company_id, assignee_user_id) REFERENCES users (company_id, id) ON DELETE SET NULL (assignee_user_id)
);
-- At most one unresolved incident per creator and rule: a condition that persists grows
-- the incident it opened (linked events) instead of opening another.
CREATE UNIQUE INDEX incidents_one_unresolved
    ON incidents (company_id, creator_id, rule) WHERE status <> 'resolved';
CREATE INDEX incidents_company_opened ON incidents (company_id, opened_at DESC);
ALTER TABLE incidents ENABLE ROW LEVEL SECURITY;
ALTER TABLE incidents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incidents
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));
GRANT SELECT, INSERT, UPDATE, DELETE ON incidents TO controlroom_app;

-- Incident numbers per company (#1, #2, ...), handed out under the company's row lock.
ALTER TABLE event_sequences ADD COLUMN last_incident bigint NOT NULL DEFAULT 0;

CREATE TABLE incident_events (
    company_id  uuid NOT NULL,
    incident_id uuid NOT NULL,
    seq         bigint NOT NULL,
    PRIMARY KEY (company_id, incident_id, seq),
    FOREIGN KEY (company_id, incident_id) REFERENCES incidents (company_id, id) ON DELETE CASCADE,
    FOREIGN KEY (company_id, seq) REFERENCES events (company_id, seq) ON DELETE CASCADE
);
ALTER TABLE incident_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incident_events
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));
GRANT SELECT, INSERT, DELETE ON incident_events TO controlroom_app;

CREATE TABLE incident_notes (
    company_id     uuid NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    incident_id    uuid NOT NULL,
    author_user_id uuid,
    author_subject text NOT NULL,
    body           text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, id),
    FOREIGN KEY (company_id, incident_id) REFERENCES incidents (company_id, id) ON DELETE CASCADE
);
ALTER TABLE incident_notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_notes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incident_notes
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));
GRANT SELECT, INSERT ON incident_notes TO controlroom_app;

-- --- notification channels ---------------------------------------------------------------
-- The webhook URL (and a signed webhook's secret) are sealed with a data key of their own,
-- which is itself sealed with the key-encryption key named by key_id (Secret Manager).
-- url_hint is what the API shows: scheme, host and the last characters.
CREATE TABLE notification_channels (
    company_id    uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    kind          text NOT NULL CHECK (kind IN ('discord', 'slack', 'webhook')),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    sealed_url    bytea NOT NULL,
    sealed_secret bytea,
    wrapped_key   bytea NOT NULL,
    key_id        text NOT NULL,
    url_hint      text NOT NULL,
    min_severity  text NOT NULL DEFAULT 'warning' CHECK (min_severity IN ('info', 'warning', 'critical')),
    quiet_start   time,
    quiet_end     time,
    quiet_timezone text NOT NULL DEFAULT 'UTC',
    mention       text CHECK (mention IS NULL OR length(mention) <= 100),
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, id),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);
ALTER TABLE notification_channels ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_channels FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notification_channels
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_channels TO controlroom_app;

-- One row per (channel, incident, transition): the outbox the notify task works from, and
-- what makes a post happen at most once. A test post has no incident.
CREATE TABLE notification_deliveries (
    company_id    uuid NOT NULL,
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    channel_id    uuid NOT NULL,
    incident_id   uuid,
    transition    text NOT NULL CHECK (transition IN ('opened', 'acknowledged', 'resolved', 'test')),
    status        text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'sending', 'delivered', 'failed', 'skipped')),
    reason        text,
    attempts      integer NOT NULL DEFAULT 0,
    last_status   integer,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    PRIMARY KEY (company_id, id),
    FOREIGN KEY (company_id, channel_id) REFERENCES notification_channels (company_id, id) ON DELETE CASCADE,
    FOREIGN KEY (company_id, incident_id) REFERENCES incidents (company_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX notification_deliveries_once
    ON notification_deliveries (company_id, channel_id, incident_id, transition)
    WHERE incident_id IS NOT NULL;
CREATE INDEX notification_deliveries_pending
    ON notification_deliveries (company_id, next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX notification_deliveries_channel
    ON notification_deliveries (company_id, channel_id, created_at DESC);
ALTER TABLE notification_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notification_deliveries
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_deliveries TO controlroom_app;

-- --- platform reads for the pulse --------------------------------------------------------
-- Which companies watch which broadcasters (active companies only), for one Helix call per
-- 100 broadcasters across every tenant; the samples are then written per company under RLS.
CREATE FUNCTION watched_creators()
RETURNS TABLE (broadcaster_user_id text, company_id uuid, creator_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT c.twitch_user_id, c.company_id, c.id FROM public.creators c
    JOIN public.companies co ON co.id = c.company_id AND co.status = 'active'
    ORDER BY c.twitch_user_id, c.company_id
$$;
GRANT CREATE ON SCHEMA public TO controlroom_router;
ALTER FUNCTION watched_creators() OWNER TO controlroom_router;
REVOKE CREATE ON SCHEMA public FROM controlroom_router;
REVOKE ALL ON FUNCTION watched_creators() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION watched_creators() TO controlroom_app;

-- Companies with notification deliveries waiting (the pulse's sweep re-enqueues them).
CREATE FUNCTION companies_with_pending_notifications(older_than timestamptz)
RETURNS TABLE (company_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT DISTINCT d.company_id FROM public.notification_deliveries d
    WHERE d.status IN ('pending', 'sending') AND d.next_attempt_at <= older_than
$$;
GRANT SELECT (company_id, status, next_attempt_at) ON notification_deliveries TO controlroom_router;
CREATE POLICY platform_pending ON notification_deliveries FOR SELECT TO controlroom_router USING (true);
GRANT CREATE ON SCHEMA public TO controlroom_router;
ALTER FUNCTION companies_with_pending_notifications(timestamptz) OWNER TO controlroom_router;
REVOKE CREATE ON SCHEMA public FROM controlroom_router;
REVOKE ALL ON FUNCTION companies_with_pending_notifications(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION companies_with_pending_notifications(timestamptz) TO controlroom_app;
