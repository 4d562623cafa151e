-- The NOC wall: each creator's avatar (Get Users' profile_image_url, refreshed at most daily)
-- and, while live, Twitch's preview image template (Get Streams' thumbnail_url, with literal
-- {width} and {height}), both stored by the audience pulse per company under RLS. Only URLs on
-- the configured image origin are stored (the adapter drops the rest): the dashboard's CSP
-- allows that origin in img-src and nothing else from Twitch.
-- depends: 0010.analytics

ALTER TABLE creators
    ADD COLUMN profile_image_url text CHECK (length(profile_image_url) <= 2048),
    ADD COLUMN preview_url text CHECK (length(preview_url) <= 2048),
    ADD COLUMN images_checked_at timestamptz;
-- The runtime role's table-wide grant on creators (0002) covers the new columns; the pulse
-- writes them in each company's tenant transaction, as it writes viewers.

-- Which broadcasters' avatars are due (never checked, or longer ago than `older_than`), the
-- oldest first and at most `max_count` of them: one Get Users request per run across every
-- tenant. The router may read the check time besides the routing columns for this.
GRANT SELECT (images_checked_at) ON creators TO controlroom_router;
CREATE FUNCTION creators_needing_images(older_than timestamptz, max_count integer)
RETURNS TABLE (broadcaster_user_id text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT c.twitch_user_id FROM public.creators c
    JOIN public.companies co ON co.id = c.company_id AND co.status = 'active'
    WHERE c.images_checked_at IS NULL OR c.images_checked_at < older_than
    GROUP BY c.twitch_user_id
    ORDER BY min(c.images_checked_at) NULLS FIRST, c.twitch_user_id
    LIMIT greatest(0, max_count)
$$;
GRANT CREATE ON SCHEMA public TO controlroom_router;
ALTER FUNCTION creators_needing_images(timestamptz, integer) OWNER TO controlroom_router;
REVOKE CREATE ON SCHEMA public FROM controlroom_router;
REVOKE ALL ON FUNCTION creators_needing_images(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION creators_needing_images(timestamptz, integer) TO controlroom_app;
