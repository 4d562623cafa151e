-- Row-level security, privileges of the runtime role, the audit hash chain and the one
-- cross-tenant read. Roles are created once per cluster by `controlroom db bootstrap`:
--   controlroom_owner  runs migrations and owns every object here
--   controlroom_app    the runtime role of every deployable: not owner, no BYPASSRLS
--   controlroom_router owns route_broadcaster() and may read only the routing columns
-- depends: 0001.tenant-schema

-- Tenant tables: FORCE so that even the owner sees nothing without a tenant.
ALTER TABLE companies ENABLE ROW LEVEL SECURITY;
ALTER TABLE companies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON companies
    USING (id = (SELECT app_current_company()))
    WITH CHECK (id = (SELECT app_current_company()));

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));

ALTER TABLE members ENABLE ROW LEVEL SECURITY;
ALTER TABLE members FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON members
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));

ALTER TABLE creators ENABLE ROW LEVEL SECURITY;
ALTER TABLE creators FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON creators
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));

ALTER TABLE event_sequences ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_sequences FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON event_sequences
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON events
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));

ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_logs
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));

ALTER TABLE archive_manifests ENABLE ROW LEVEL SECURITY;
ALTER TABLE archive_manifests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON archive_manifests
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));

-- Platform tables. A tenant sees the subscription health of the broadcasters it watches
-- and nothing else; dead letters can be appended but never read back by the runtime role.
ALTER TABLE eventsub_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE eventsub_subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY watched_broadcasters ON eventsub_subscriptions FOR SELECT
    USING (EXISTS (
        SELECT 1 FROM creators c
        WHERE c.company_id = (SELECT app_current_company())
          AND c.twitch_user_id = eventsub_subscriptions.broadcaster_user_id));

ALTER TABLE ingest_dead_letters ENABLE ROW LEVEL SECURITY;
ALTER TABLE ingest_dead_letters FORCE ROW LEVEL SECURITY;
CREATE POLICY append_only ON ingest_dead_letters FOR INSERT WITH CHECK (true);

-- Privileges of the runtime role: only what the deployables use.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON companies TO controlroom_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON users, members, creators TO controlroom_app;
GRANT SELECT, INSERT, UPDATE ON event_sequences TO controlroom_app;
GRANT SELECT, INSERT, DELETE ON events TO controlroom_app;
GRANT SELECT, INSERT ON audit_logs TO controlroom_app;
GRANT SELECT, INSERT, UPDATE ON archive_manifests TO controlroom_app;
GRANT SELECT ON eventsub_subscriptions TO controlroom_app;
GRANT INSERT ON ingest_dead_letters TO controlroom_app;

-- The audit chain. Each row's hash covers its content and the previous row's hash within
-- its company; one function computes it, for the trigger and the verifier alike.
CREATE FUNCTION audit_row_hash(
    prev_hash bytea, company_id uuid, id bigint, occurred_at timestamptz,
    actor_user_id uuid, actor_subject text, action text, target_type text, target_id text,
    before jsonb, after jsonb
) RETURNS bytea
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
    SELECT sha256(prev_hash || convert_to(jsonb_build_array(
        company_id::text, id,
        to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        actor_user_id::text, actor_subject, action, target_type, target_id, before, after
    )::text, 'UTF8'))
$$;

CREATE FUNCTION audit_genesis_hash() RETURNS bytea
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog
AS $$ SELECT decode(repeat('00', 32), 'hex') $$;

CREATE FUNCTION audit_logs_chain() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $$
DECLARE
    last_id   bigint;
    last_hash bytea;
BEGIN
    -- one writer per company at a time, so two appends never fork the chain
    PERFORM pg_advisory_xact_lock(hashtextextended('audit:' || NEW.company_id::text, 0));
    SELECT a.id, a.hash INTO last_id, last_hash
      FROM audit_logs a WHERE a.company_id = NEW.company_id
      ORDER BY a.id DESC LIMIT 1;
    NEW.id := coalesce(last_id, 0) + 1;
    NEW.prev_hash := coalesce(last_hash, audit_genesis_hash());
    NEW.occurred_at := date_trunc('milliseconds', coalesce(NEW.occurred_at, now()));
    NEW.hash := audit_row_hash(NEW.prev_hash, NEW.company_id, NEW.id, NEW.occurred_at,
        NEW.actor_user_id, NEW.actor_subject, NEW.action, NEW.target_type, NEW.target_id,
        NEW.before, NEW.after);
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_logs_chain BEFORE INSERT ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_chain();

-- Walks the current tenant's chain; returns the rows checked and the first broken row.
CREATE FUNCTION audit_verify_chain()
RETURNS TABLE (checked bigint, first_bad_id bigint, reason text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public
AS $$
DECLARE
    r             record;
    expected_prev bytea := audit_genesis_hash();
    expected_id   bigint := 1;
    n             bigint := 0;
BEGIN
    FOR r IN SELECT * FROM audit_logs a
             WHERE a.company_id = (SELECT app_current_company()) ORDER BY a.id LOOP
        n := n + 1;
        IF r.id <> expected_id THEN
            RETURN QUERY SELECT n, r.id, 'a row is missing before this one';
            RETURN;
        END IF;
        IF r.prev_hash <> expected_prev THEN
            RETURN QUERY SELECT n, r.id, 'prev_hash does not match the previous row';
            RETURN;
        END IF;
        IF r.hash <> audit_row_hash(r.prev_hash, r.company_id, r.id, r.occurred_at,
                r.actor_user_id, r.actor_subject, r.action, r.target_type, r.target_id,
                r.before, r.after) THEN
            RETURN QUERY SELECT n, r.id, 'row content does not match its hash';
            RETURN;
        END IF;
        expected_prev := r.hash;
        expected_id := expected_id + 1;
    END LOOP;
    RETURN QUERY SELECT n, NULL::bigint, NULL::text;
END
$$;

REVOKE ALL ON FUNCTION audit_row_hash(bytea, uuid, bigint, timestamptz, uuid, text, text, text, text, jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_logs_chain() FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_verify_chain() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_row_hash(bytea, uuid, bigint, timestamptz, uuid, text, text, text, text, jsonb, jsonb) TO controlroom_app;
GRANT EXECUTE ON FUNCTION audit_verify_chain() TO controlroom_app;

-- The one cross-tenant read: which companies watch a broadcaster. It runs as
-- controlroom_router, whose only privilege is reading the routing columns of creators.
CREATE INDEX creators_routing ON creators (twitch_user_id);
GRANT SELECT (company_id, id, twitch_user_id) ON creators TO controlroom_router;
CREATE POLICY routing ON creators FOR SELECT TO controlroom_router USING (true);

CREATE FUNCTION route_broadcaster(broadcaster_user_id text)
RETURNS TABLE (company_id uuid, creator_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT c.company_id, c.id FROM public.creators c
    WHERE c.twitch_user_id = route_broadcaster.broadcaster_user_id
    ORDER BY c.company_id
$$;
-- A new owner needs CREATE on the schema at the moment of the hand-over, and no longer.
GRANT CREATE ON SCHEMA public TO controlroom_router;
ALTER FUNCTION route_broadcaster(text) OWNER TO controlroom_router;
REVOKE CREATE ON SCHEMA public FROM controlroom_router;
REVOKE ALL ON FUNCTION route_broadcaster(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION route_broadcaster(text) TO controlroom_app;
