-- The tenant schema. Every tenant table carries company_id, forces row-level security and
-- is reachable by the runtime role (controlroom_app) only through policies that read
-- app.company_id. Migrations run as the owner role; see controlroom/dbadmin.py for the roles.

-- The tenant of the current transaction, or NULL when it is unset, empty or not a UUID.
-- Plain SQL (no exception block) so the planner can inline it; policies call it through a
-- sub-select so it is evaluated once per statement, not once per row.
CREATE FUNCTION app_current_company() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT CASE
        WHEN current_setting('app.company_id', true)
             ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
        THEN current_setting('app.company_id', true)::uuid
    END
$$;

CREATE TABLE companies (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug        text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    branding    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(branding) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Identities as the identity provider names them (`sub`), kept per company so that no row
-- is shared between tenants.
CREATE TABLE users (
    company_id   uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    subject      text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    email        text,
    display_name text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, id),
    UNIQUE (company_id, subject)
);

CREATE TABLE members (
    company_id  uuid NOT NULL,
    user_id     uuid NOT NULL,
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'operator', 'viewer')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, user_id),
    FOREIGN KEY (company_id, user_id) REFERENCES users (company_id, id) ON DELETE CASCADE
);

CREATE TABLE creators (
    company_id        uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    twitch_user_id    text NOT NULL CHECK (twitch_user_id ~ '^[0-9]{1,20}$'),
    twitch_login      text NOT NULL CHECK (twitch_login ~ '^[a-z0-9_]{1,25}$'),
    display_name      text NOT NULL,
    labels            text[] NOT NULL DEFAULT '{}',
    notes             text NOT NULL DEFAULT '',
    -- live state, updated by event time (state_at), never by arrival order
    status            text NOT NULL DEFAULT 'unknown' CHECK (status IN ('unknown', 'live', 'offline')),
    title             text,
    category_id       text,
    category_name     text,
    live_since        timestamptz,
    state_at          timestamptz,
    last_event_at     timestamptz,
    authorization_revoked_at timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, id),
    UNIQUE (company_id, twitch_user_id)
);

-- The per-company counter that hands out event seq numbers. Updating this row inside the
-- inserting transaction serializes writers of one company, so seq is gap-free and
-- increases in commit order.
CREATE TABLE event_sequences (
    company_id uuid PRIMARY KEY REFERENCES companies (id) ON DELETE CASCADE,
    last_seq   bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
);

CREATE TABLE events (
    company_id        uuid NOT NULL,
    seq               bigint NOT NULL CHECK (seq > 0),
    creator_id        uuid,
    twitch_message_id text NOT NULL,
    -- a natural id when Twitch can repeat one fact under a new message id (a stream's id
    -- for online/offline, say); otherwise the message id
    dedup_key         text NOT NULL,
    type              text NOT NULL,
    version           text NOT NULL,
    topic             text NOT NULL,
    occurred_at       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL,
    stored_at         timestamptz NOT NULL DEFAULT now(),
    broadcaster_user_id text NOT NULL,
    actor_user_id     text,
    actor_login       text,
    actor_name        text,
    target_user_id    text,
    target_login      text,
    target_name       text,
    amount            bigint,
    tier              text,
    title             text,
    category_name     text,
    duration_seconds  integer,
    message_text      text,
    outcome           text,
    payload           jsonb NOT NULL,
    PRIMARY KEY (company_id, seq),
    UNIQUE (company_id, twitch_message_id),
    UNIQUE (company_id, dedup_key),
    FOREIGN KEY (company_id, creator_id) REFERENCES creators (company_id, id) ON DELETE SET NULL (creator_id)
);
CREATE INDEX events_company_creator_seq ON events (company_id, creator_id, seq);
CREATE INDEX events_company_occurred ON events (company_id, occurred_at);
CREATE INDEX events_company_type_seq ON events (company_id, type, seq);

-- Platform level: what Twitch has been asked to send, per broadcaster and type. A tenant
-- sees only the rows of broadcasters it watches; writes go through functions added by the
-- ingestion and subscription code.
CREATE TABLE eventsub_subscriptions (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    broadcaster_user_id    text NOT NULL,
    type                   text NOT NULL,
    version                text NOT NULL,
    condition              jsonb NOT NULL DEFAULT '{}'::jsonb,
    twitch_subscription_id text,
    status                 text NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (broadcaster_user_id, type, version, condition)
);

CREATE TABLE audit_logs (
    company_id    uuid NOT NULL REFERENCES companies (id),
    id            bigint NOT NULL,
    occurred_at   timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
    actor_user_id uuid,
    actor_subject text NOT NULL,
    action        text NOT NULL,
    target_type   text NOT NULL,
    target_id     text,
    before        jsonb,
    after         jsonb,
    prev_hash     bytea NOT NULL,
    hash          bytea NOT NULL,
    PRIMARY KEY (company_id, id)
);

-- Platform level: deliveries that can never be stored, kept with their raw body so nothing
-- is lost. The runtime role may only append.
CREATE TABLE ingest_dead_letters (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    twitch_message_id text,
    subscription_type text,
    reason            text NOT NULL,
    raw_body          bytea NOT NULL,
    headers           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE archive_manifests (
    company_id     uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    day            date NOT NULL,
    object_keys    jsonb NOT NULL,
    row_count      bigint NOT NULL CHECK (row_count >= 0),
    first_seq      bigint,
    last_seq       bigint,
    checksums      jsonb NOT NULL,
    schema_version integer NOT NULL,
    exported_at    timestamptz NOT NULL,
    verified_at    timestamptz,
    pruned_at      timestamptz,
    PRIMARY KEY (company_id, day)
);
