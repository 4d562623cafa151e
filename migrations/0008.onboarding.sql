-- Onboarding: the tenant lifecycle (suspend, delete after a grace period, a platform audit),
-- platform operators, invitations, sign-in sessions with rotating refresh tokens, and creator
-- consent (connect links, what each broadcaster granted our Twitch client).
-- depends: 0007.archive-coverage

-- The platform context: platform operators' use cases set app.platform = 'operator' in their
-- transaction, as tenant use cases set app.company_id.
CREATE FUNCTION app_platform_operator() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$ SELECT coalesce(current_setting('app.platform', true), '') = 'operator' $$;

-- --- the tenant lifecycle ----------------------------------------------------------------
-- active: in use; suspended: sign-in, sockets and ingestion refused; deleting: as suspended,
-- and purged once delete_after has passed.
ALTER TABLE companies
    ADD COLUMN status text NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'suspended', 'deleting')),
    ADD COLUMN status_changed_at timestamptz,
    ADD COLUMN delete_after timestamptz,
    ADD CONSTRAINT companies_delete_after CHECK ((status = 'deleting') = (delete_after IS NOT NULL));

-- What platform operators did. It outlives the companies it names (no foreign key).
CREATE TABLE platform_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL CHECK (length(actor) BETWEEN 1 AND 320),
    action      text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    company_id  uuid,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(detail) = 'object')
);
ALTER TABLE platform_audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE platform_audit FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_only ON platform_audit
    USING ((SELECT app_platform_operator())) WITH CHECK ((SELECT app_platform_operator()));
GRANT SELECT, INSERT ON platform_audit TO controlroom_app;

-- Who may act as a platform operator: listed by email by `controlroom operator add`; the
-- subject is bound at their first sign-in.
CREATE TABLE platform_operators (
    email      text PRIMARY KEY CHECK (length(email) BETWEEN 3 AND 320 AND email = lower(email)),
    subject    text UNIQUE CHECK (length(subject) BETWEEN 1 AND 255),
    added_at   timestamptz NOT NULL DEFAULT now(),
    added_by   text NOT NULL
);
ALTER TABLE platform_operators ENABLE ROW LEVEL SECURITY;
ALTER TABLE platform_operators FORCE ROW LEVEL SECURITY;
-- anyone may ask whether a person is an operator (sign-in does); only operators change it
CREATE POLICY readable ON platform_operators FOR SELECT USING (true);
CREATE POLICY platform_writes ON platform_operators FOR INSERT
    WITH CHECK ((SELECT app_platform_operator()));
CREATE POLICY platform_updates ON platform_operators FOR UPDATE
    USING ((SELECT app_platform_operator())) WITH CHECK ((SELECT app_platform_operator()));
CREATE POLICY platform_deletes ON platform_operators FOR DELETE
    USING ((SELECT app_platform_operator()));
GRANT SELECT, INSERT, UPDATE, DELETE ON platform_operators TO controlroom_app;

-- A platform operator's view of every company (the tenant policy hides them otherwise).
CREATE POLICY platform_operators_see_all ON companies
    USING ((SELECT app_platform_operator())) WITH CHECK ((SELECT app_platform_operator()));

-- --- invitations (tenant) ---------------------------------------------------------------
-- A single-use link for one email and one role; only the hash of its secret is kept.
CREATE TABLE invitations (
    company_id         uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    id                 uuid NOT NULL DEFAULT gen_random_uuid(),
    email              text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    role               text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin', 'owner')),
    token_hash         bytea NOT NULL UNIQUE,
    invited_by_subject text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    accepted_at        timestamptz,
    accepted_user_id   uuid,
    revoked_at         timestamptz,
    PRIMARY KEY (company_id, id),
    CHECK (accepted_at IS NULL OR revoked_at IS NULL)
);
ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));
GRANT SELECT, INSERT, UPDATE, DELETE ON invitations TO controlroom_app;

-- --- sign-in sessions -------------------------------------------------------------------
-- One row per sign-in (a refresh-token family): who signed in and which company they last
-- chose. Found only through the hash of a secret the browser holds in an HttpOnly cookie.
CREATE TABLE sign_in_sessions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    issuer         text NOT NULL,
    subject        text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    email          text,
    display_name   text,
    company_id     uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX sign_in_sessions_subject ON sign_in_sessions (subject);
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sign_in_sessions (id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
ALTER TABLE sign_in_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sign_in_sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
-- Platform rows without a tenant: the secret's hash is the key, so the runtime role may use
-- every row (forced RLS still keeps any other role out).
CREATE POLICY sessions_runtime ON sign_in_sessions TO controlroom_app USING (true) WITH CHECK (true);
CREATE POLICY tokens_runtime ON refresh_tokens TO controlroom_app USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE ON sign_in_sessions, refresh_tokens TO controlroom_app;

-- The companies a person belongs to, for sign-in's company choice: the one cross-tenant
-- read of memberships, through the router role and only these columns.
GRANT SELECT (company_id, id, subject) ON users TO controlroom_router;
GRANT SELECT (company_id, user_id, role) ON members TO controlroom_router;
GRANT SELECT (name, slug, status) ON companies TO controlroom_router;
CREATE POLICY platform_memberships ON users FOR SELECT TO controlroom_router USING (true);
CREATE POLICY platform_memberships ON members FOR SELECT TO controlroom_router USING (true);

CREATE FUNCTION memberships_of(subject text)
RETURNS TABLE (company_id uuid, company_name text, company_slug text, company_status text,
               user_id uuid, role text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT c.id, c.name, c.slug, c.status, u.id, m.role
    FROM public.users u
    JOIN public.members m ON m.company_id = u.company_id AND m.user_id = u.id
    JOIN public.companies c ON c.id = u.company_id
    WHERE u.subject = memberships_of.subject
    ORDER BY c.name, c.id
$$;
GRANT CREATE ON SCHEMA public TO controlroom_router;
ALTER FUNCTION memberships_of(text) OWNER TO controlroom_router;
REVOKE CREATE ON SCHEMA public FROM controlroom_router;
REVOKE ALL ON FUNCTION memberships_of(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memberships_of(text) TO controlroom_app;

-- Ingestion pauses for companies that are not active: the router no longer names them.
CREATE OR REPLACE FUNCTION route_broadcaster(broadcaster_user_id text)
RETURNS TABLE (company_id uuid, creator_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT c.company_id, c.id FROM public.creators c
    JOIN public.companies co ON co.id = c.company_id AND co.status = 'active'
    WHERE c.twitch_user_id = route_broadcaster.broadcaster_user_id
    ORDER BY c.company_id
$$;

-- --- creator consent --------------------------------------------------------------------
-- A link an admin sends a creator; single use, expiring; only the secret's hash is kept.
CREATE TABLE creator_connect_links (
    company_id  uuid NOT NULL,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    creator_id  uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_by_subject text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    PRIMARY KEY (company_id, id),
    FOREIGN KEY (company_id, creator_id) REFERENCES creators (company_id, id) ON DELETE CASCADE
);
ALTER TABLE creator_connect_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE creator_connect_links FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON creator_connect_links
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));
GRANT SELECT, INSERT, UPDATE, DELETE ON creator_connect_links TO controlroom_app;

-- Platform level: what each broadcaster granted our Twitch client, and when it was revoked.
-- A tenant sees the rows of broadcasters it watches; writes go through two functions.
CREATE TABLE twitch_authorizations (
    broadcaster_user_id text PRIMARY KEY,
    scopes              text[] NOT NULL DEFAULT '{}',
    granted_at          timestamptz,
    revoked_at          timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE twitch_authorizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE twitch_authorizations FORCE ROW LEVEL SECURITY;
CREATE POLICY watched_broadcasters ON twitch_authorizations FOR SELECT
    USING (EXISTS (
        SELECT 1 FROM creators c
        WHERE c.company_id = (SELECT app_current_company())
          AND c.twitch_user_id = twitch_authorizations.broadcaster_user_id));
GRANT SELECT ON twitch_authorizations TO controlroom_app;
GRANT SELECT, INSERT, UPDATE ON twitch_authorizations TO controlroom_router;
CREATE POLICY platform_writes ON twitch_authorizations TO controlroom_router
    USING (true) WITH CHECK (true);

-- A grant (from a consent callback) or a revocation (from user.authorization.revoke); the
-- later fact wins, so a late redelivery of an old revocation does not undo a new grant.
CREATE FUNCTION record_twitch_authorization(
    broadcaster_user_id text, scopes text[], granted_at timestamptz
) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    INSERT INTO public.twitch_authorizations AS a (broadcaster_user_id, scopes, granted_at)
    VALUES ($1, coalesce($2, '{}'), $3)
    ON CONFLICT (broadcaster_user_id) DO UPDATE
        SET scopes = EXCLUDED.scopes, granted_at = EXCLUDED.granted_at, updated_at = now()
        WHERE a.granted_at IS NULL OR a.granted_at <= EXCLUDED.granted_at
$$;
CREATE FUNCTION record_twitch_revocation(broadcaster_user_id text, revoked_at timestamptz)
RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    INSERT INTO public.twitch_authorizations AS a (broadcaster_user_id, revoked_at)
    VALUES ($1, $2)
    ON CONFLICT (broadcaster_user_id) DO UPDATE
        SET revoked_at = EXCLUDED.revoked_at, updated_at = now()
        WHERE a.revoked_at IS NULL OR a.revoked_at < EXCLUDED.revoked_at
$$;
GRANT CREATE ON SCHEMA public TO controlroom_router;
ALTER FUNCTION record_twitch_authorization(text, text[], timestamptz) OWNER TO controlroom_router;
ALTER FUNCTION record_twitch_revocation(text, timestamptz) OWNER TO controlroom_router;
REVOKE CREATE ON SCHEMA public FROM controlroom_router;
REVOKE ALL ON FUNCTION record_twitch_authorization(text, text[], timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION record_twitch_revocation(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION record_twitch_authorization(text, text[], timestamptz) TO controlroom_app;
GRANT EXECUTE ON FUNCTION record_twitch_revocation(text, timestamptz) TO controlroom_app;

-- --- purging a deleted company ----------------------------------------------------------
-- Runs as the owner, under row-level security with the company as tenant, and only for a
-- company whose grace period is over. Returns the rows removed (the platform audit keeps
-- the record; the caller removes the S3 prefixes first).
CREATE FUNCTION purge_company(target uuid) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    removed bigint := 0;
    n bigint;
    due boolean;
BEGIN
    PERFORM set_config('app.company_id', target::text, true);
    SELECT c.status = 'deleting' AND c.delete_after <= now() INTO due
      FROM public.companies c WHERE c.id = target FOR UPDATE;
    IF due IS NULL THEN
        RETURN 0;
    END IF;
    IF NOT due THEN
        RAISE EXCEPTION 'company % is not due for deletion', target USING ERRCODE = '55000';
    END IF;
    DELETE FROM public.event_acks WHERE company_id = target; GET DIAGNOSTICS n = ROW_COUNT; removed := removed + n;
    DELETE FROM public.events WHERE company_id = target; GET DIAGNOSTICS n = ROW_COUNT; removed := removed + n;
    DELETE FROM public.event_sequences WHERE company_id = target; GET DIAGNOSTICS n = ROW_COUNT; removed := removed + n;
    DELETE FROM public.archive_manifests WHERE company_id = target; GET DIAGNOSTICS n = ROW_COUNT; removed := removed + n;
    DELETE FROM public.creator_connect_links WHERE company_id = target; GET DIAGNOSTICS n = ROW_COUNT; removed := removed + n;
    DELETE FROM public.invitations WHERE company_id = target; GET DIAGNOSTICS n = ROW_COUNT; removed := removed + n;
    DELETE FROM public.members WHERE company_id = target; GET DIAGNOSTICS n = ROW_COUNT; removed := removed + n;
    DELETE FROM public.users WHERE company_id = target; GET DIAGNOSTICS n = ROW_COUNT; removed := removed + n;
    DELETE FROM public.creators WHERE company_id = target; GET DIAGNOSTICS n = ROW_COUNT; removed := removed + n;
    DELETE FROM public.audit_logs WHERE company_id = target; GET DIAGNOSTICS n = ROW_COUNT; removed := removed + n;
    DELETE FROM public.companies WHERE id = target; GET DIAGNOSTICS n = ROW_COUNT; removed := removed + n;
    RETURN removed;
END
$$;
REVOKE ALL ON FUNCTION purge_company(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION purge_company(uuid) TO controlroom_app;
