-- Ingestion: a level column for hype trains, a separate event time for a creator's title and
-- category, and the platform's write path for EventSub subscription statuses.
-- depends: 0002.row-level-security

ALTER TABLE events ADD COLUMN level integer;
-- Live status and channel details change through different events; each keeps the time of
-- the event that set it, so an older delivery never overwrites a newer fact.
ALTER TABLE creators ADD COLUMN details_at timestamptz;

-- Subscription statuses are written by the platform role, through one function.
GRANT SELECT, INSERT, UPDATE ON eventsub_subscriptions TO controlroom_router;
CREATE POLICY platform_writes ON eventsub_subscriptions TO controlroom_router
    USING (true) WITH CHECK (true);

CREATE FUNCTION record_subscription_status(
    broadcaster_user_id text, type text, version text, condition jsonb,
    twitch_subscription_id text, status text, at timestamptz
) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    INSERT INTO public.eventsub_subscriptions AS s
        (broadcaster_user_id, type, version, condition, twitch_subscription_id, status, updated_at)
    VALUES ($1, $2, $3, coalesce($4, '{}'::jsonb), $5, left($6, 100), $7)
    ON CONFLICT (broadcaster_user_id, type, version, condition) DO UPDATE
        SET status = EXCLUDED.status,
            twitch_subscription_id = coalesce(EXCLUDED.twitch_subscription_id, s.twitch_subscription_id),
            updated_at = EXCLUDED.updated_at
        WHERE s.updated_at <= EXCLUDED.updated_at
$$;
GRANT CREATE ON SCHEMA public TO controlroom_router;
ALTER FUNCTION record_subscription_status(text, text, text, jsonb, text, text, timestamptz) OWNER TO controlroom_router;
REVOKE CREATE ON SCHEMA public FROM controlroom_router;
REVOKE ALL ON FUNCTION record_subscription_status(text, text, text, jsonb, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION record_subscription_status(text, text, text, jsonb, text, text, timestamptz) TO controlroom_app;
