-- The REST API: acknowledgements of events by operators, and the one cross-tenant read the
-- subscription reconciler needs (which broadcasters does anybody watch).
-- depends: 0004.stream-epoch

CREATE TABLE event_acks (
    company_id  uuid NOT NULL,
    seq         bigint NOT NULL,
    user_id     uuid NOT NULL,
    note        text NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    acked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, seq, user_id),
    FOREIGN KEY (company_id, seq) REFERENCES events (company_id, seq) ON DELETE CASCADE,
    FOREIGN KEY (company_id, user_id) REFERENCES users (company_id, id) ON DELETE CASCADE
);
ALTER TABLE event_acks ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_acks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON event_acks
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));
GRANT SELECT, INSERT, UPDATE, DELETE ON event_acks TO controlroom_app;

CREATE INDEX creators_company_login ON creators (company_id, twitch_login);

CREATE FUNCTION watched_broadcasters()
RETURNS TABLE (broadcaster_user_id text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT DISTINCT c.twitch_user_id FROM public.creators c ORDER BY 1
$$;
GRANT CREATE ON SCHEMA public TO controlroom_router;
ALTER FUNCTION watched_broadcasters() OWNER TO controlroom_router;
REVOKE CREATE ON SCHEMA public FROM controlroom_router;
REVOKE ALL ON FUNCTION watched_broadcasters() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION watched_broadcasters() TO controlroom_app;
