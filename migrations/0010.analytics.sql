-- Analytics for short lookbacks: exact rollups per company x creator x bucket, kept at three
-- widths (5 minutes, UTC hours, UTC days: a 30-day figure sums days and edge hours and
-- 5-minute buckets instead of 8,640 buckets per creator), maintained in the transaction that stores the events (a statement trigger over the rows
-- the INSERT really added, so a redelivery, which adds no row, adds nothing), the audience
-- pulse's samples rolled up the same way, and the company's time zone for day boundaries.
-- depends: 0009.incidents

-- Day and hour boundaries of reports are the company's; validated against pg_timezone_names
-- by the use case (a CHECK cannot read the catalog).
ALTER TABLE companies ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC'
    CHECK (length(time_zone) BETWEEN 1 AND 64);

-- A bucket of `width` seconds starts on a multiple of it since the epoch (UTC). Every modern
-- zone's offset is a multiple of 15 minutes, so a company's local hours and days are whole
-- 5-minute buckets, and whole UTC hours and days where the zone allows.
CREATE FUNCTION analytics_bucket(at timestamptz, width integer) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT date_bin(make_interval(secs => width), at, timestamptz '1970-01-01 00:00:00+00') $$;

CREATE TABLE analytics_buckets (
    company_id         uuid NOT NULL,
    creator_id         uuid NOT NULL,
    width              integer NOT NULL CHECK (width IN (300, 3600, 86400)),
    bucket             timestamptz NOT NULL,
    events             integer NOT NULL DEFAULT 0,
    follows            integer NOT NULL DEFAULT 0,
    subs_tier1         integer NOT NULL DEFAULT 0,
    subs_tier2         integer NOT NULL DEFAULT 0,
    subs_tier3         integer NOT NULL DEFAULT 0,
    resubs             integer NOT NULL DEFAULT 0,
    gifted_subs        integer NOT NULL DEFAULT 0,
    bits               bigint NOT NULL DEFAULT 0,
    raids_in           integer NOT NULL DEFAULT 0,
    raids_in_viewers   bigint NOT NULL DEFAULT 0,
    raids_out          integer NOT NULL DEFAULT 0,
    raids_out_viewers  bigint NOT NULL DEFAULT 0,
    hype_trains        integer NOT NULL DEFAULT 0,
    hype_train_level   integer NOT NULL DEFAULT 0,
    polls              integer NOT NULL DEFAULT 0,
    predictions        integer NOT NULL DEFAULT 0,
    chat_messages      integer NOT NULL DEFAULT 0,
    bans               integer NOT NULL DEFAULT 0,
    timeouts           integer NOT NULL DEFAULT 0,
    ad_break_seconds   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (company_id, width, bucket, creator_id),
    FOREIGN KEY (company_id, creator_id) REFERENCES creators (company_id, id) ON DELETE CASCADE
);
ALTER TABLE analytics_buckets ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics_buckets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON analytics_buckets
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));
GRANT SELECT, INSERT, UPDATE, DELETE ON analytics_buckets TO controlroom_app;
-- A creator's drill-down reads one creator's buckets in a range.
CREATE INDEX analytics_buckets_creator ON analytics_buckets (company_id, creator_id, width, bucket);

-- The pulse's samples, rolled up: average = viewer_sum / samples. Samples are pruned after
-- 24 hours; these rows stay.
CREATE TABLE analytics_viewers (
    company_id   uuid NOT NULL,
    creator_id   uuid NOT NULL,
    width        integer NOT NULL CHECK (width IN (300, 3600, 86400)),
    bucket       timestamptz NOT NULL,
    samples      integer NOT NULL DEFAULT 0,
    viewer_sum   bigint NOT NULL DEFAULT 0,
    viewer_peak  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (company_id, width, bucket, creator_id),
    FOREIGN KEY (company_id, creator_id) REFERENCES creators (company_id, id) ON DELETE CASCADE
);
ALTER TABLE analytics_viewers ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics_viewers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON analytics_viewers
    USING (company_id = (SELECT app_current_company()))
    WITH CHECK (company_id = (SELECT app_current_company()));
GRANT SELECT, INSERT, UPDATE, DELETE ON analytics_viewers TO controlroom_app;
CREATE INDEX analytics_viewers_creator ON analytics_viewers (company_id, creator_id, width, bucket);

-- The one definition of every counted metric, as the text of a query over any relation of
-- event rows (`source`): the trigger runs it over the rows an INSERT added, the rebuild and
-- the check over the stored events, so the live path and a recount never disagree on what
-- a metric means. Column order is analytics_buckets'.
CREATE FUNCTION analytics_select(source text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $f$ SELECT format($q$
    SELECT
        e.company_id, e.creator_id, w.width, analytics_bucket(e.occurred_at, w.width),
        count(*)::integer,
        count(*) FILTER (WHERE e.type = 'channel.follow')::integer,
        count(*) FILTER (WHERE e.type = 'channel.subscribe' AND e.outcome IS DISTINCT FROM 'gift'
                         AND e.tier IS DISTINCT FROM '2000' AND e.tier IS DISTINCT FROM '3000')::integer,
        count(*) FILTER (WHERE e.type = 'channel.subscribe' AND e.outcome IS DISTINCT FROM 'gift'
                         AND e.tier = '2000')::integer,
        count(*) FILTER (WHERE e.type = 'channel.subscribe' AND e.outcome IS DISTINCT FROM 'gift'
                         AND e.tier = '3000')::integer,
        count(*) FILTER (WHERE e.type = 'channel.subscription.message')::integer,
        coalesce(sum(greatest(e.amount, 0)) FILTER (WHERE e.type = 'channel.subscription.gift'), 0)::integer,
        coalesce(sum(greatest(e.amount, 0)) FILTER (WHERE e.type = 'channel.cheer'), 0)::bigint,
        count(*) FILTER (WHERE e.type = 'channel.raid' AND e.outcome = 'incoming')::integer,
        coalesce(sum(greatest(e.amount, 0)) FILTER (WHERE e.type = 'channel.raid' AND e.outcome = 'incoming'), 0)::bigint,
        count(*) FILTER (WHERE e.type = 'channel.raid' AND e.outcome = 'outgoing')::integer,
        coalesce(sum(greatest(e.amount, 0)) FILTER (WHERE e.type = 'channel.raid' AND e.outcome = 'outgoing'), 0)::bigint,
        count(*) FILTER (WHERE e.type = 'channel.hype_train.begin')::integer,
        coalesce(max(e.level) FILTER (WHERE e.type IN ('channel.hype_train.begin',
                 'channel.hype_train.progress', 'channel.hype_train.end')), 0)::integer,
        count(*) FILTER (WHERE e.type = 'channel.poll.begin')::integer,
        count(*) FILTER (WHERE e.type = 'channel.prediction.begin')::integer,
        count(*) FILTER (WHERE e.type = 'channel.chat.message')::integer,
        count(*) FILTER (WHERE e.type = 'channel.ban' AND e.outcome = 'permanent')::integer,
        count(*) FILTER (WHERE e.type = 'channel.ban' AND e.outcome = 'timeout')::integer,
        coalesce(sum(greatest(e.duration_seconds, 0)) FILTER (WHERE e.type = 'channel.ad_break.begin'), 0)::bigint
    FROM %s AS e CROSS JOIN (VALUES (300), (3600), (86400)) AS w (width)
    WHERE e.creator_id IS NOT NULL
    GROUP BY 1, 2, 3, 4 $q$, source) $f$;

-- Adds counted rows into the rollups (the trigger's half; rebuild inserts into emptied rows).
CREATE FUNCTION analytics_merge_sql(source text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $f$ SELECT 'INSERT INTO analytics_buckets AS b ' || analytics_select(source) || $q$
    ON CONFLICT (company_id, width, bucket, creator_id) DO UPDATE SET
        events = b.events + EXCLUDED.events,
        follows = b.follows + EXCLUDED.follows,
        subs_tier1 = b.subs_tier1 + EXCLUDED.subs_tier1,
        subs_tier2 = b.subs_tier2 + EXCLUDED.subs_tier2,
        subs_tier3 = b.subs_tier3 + EXCLUDED.subs_tier3,
        resubs = b.resubs + EXCLUDED.resubs,
        gifted_subs = b.gifted_subs + EXCLUDED.gifted_subs,
        bits = b.bits + EXCLUDED.bits,
        raids_in = b.raids_in + EXCLUDED.raids_in,
        raids_in_viewers = b.raids_in_viewers + EXCLUDED.raids_in_viewers,
        raids_out = b.raids_out + EXCLUDED.raids_out,
        raids_out_viewers = b.raids_out_viewers + EXCLUDED.raids_out_viewers,
        hype_trains = b.hype_trains + EXCLUDED.hype_trains,
        hype_train_level = greatest(b.hype_train_level, EXCLUDED.hype_train_level),
        polls = b.polls + EXCLUDED.polls,
        predictions = b.predictions + EXCLUDED.predictions,
        chat_messages = b.chat_messages + EXCLUDED.chat_messages,
        bans = b.bans + EXCLUDED.bans,
        timeouts = b.timeouts + EXCLUDED.timeouts,
        ad_break_seconds = b.ad_break_seconds + EXCLUDED.ad_break_seconds $q$ $f$;

-- The trigger's body is that text, written in as static SQL when this migration runs: one
-- definition still, and PL/pgSQL keeps the statement's plan instead of planning it anew on
-- every INSERT (persist stores one event per transaction).
DO $do$
BEGIN
    EXECUTE format($fn$
        CREATE FUNCTION analytics_add_events() RETURNS trigger
        LANGUAGE plpgsql
        SET search_path = pg_catalog, public
        AS $body$
        BEGIN
            %s;
            RETURN NULL;
        END
        $body$ $fn$, analytics_merge_sql('fresh'));
END
$do$;

-- A company's recount of [since, until) from its stored events (RLS picks the company).
CREATE FUNCTION analytics_recount(since timestamptz, until timestamptz)
RETURNS SETOF analytics_buckets
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public
AS $$
BEGIN
    RETURN QUERY EXECUTE analytics_select(format(
        '(SELECT * FROM events WHERE company_id = app_current_company() '
        'AND occurred_at >= %L AND occurred_at < %L)', since, until));
END
$$;

-- Replace the tenant's rollups of [since, until) with a recount; returns the rows written.
-- The caller holds the company's counter row, so no writer adds an event meanwhile.
CREATE FUNCTION analytics_rebuild(since timestamptz, until timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $$
DECLARE
    written bigint;
BEGIN
    -- whole UTC days only: an hour or day row outside the range would be half rebuilt
    IF since <> analytics_bucket(since, 86400) OR until <> analytics_bucket(until, 86400) THEN
        RAISE EXCEPTION 'analytics_rebuild takes whole UTC days';
    END IF;
    DELETE FROM analytics_buckets
        WHERE company_id = app_current_company() AND bucket >= since AND bucket < until;
    EXECUTE analytics_merge_sql(format(
        '(SELECT * FROM events WHERE company_id = app_current_company() '
        'AND occurred_at >= %L AND occurred_at < %L)', since, until));
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;
GRANT EXECUTE ON FUNCTION analytics_recount(timestamptz, timestamptz),
    analytics_rebuild(timestamptz, timestamptz) TO controlroom_app;

CREATE TRIGGER analytics_events AFTER INSERT ON events
    REFERENCING NEW TABLE AS fresh
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_add_events();

CREATE FUNCTION analytics_add_samples() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $$
BEGIN
    INSERT INTO analytics_viewers AS v
        (company_id, creator_id, width, bucket, samples, viewer_sum, viewer_peak)
    SELECT s.company_id, s.creator_id, w.width, analytics_bucket(s.sampled_at, w.width),
           count(*), sum(s.viewers), max(s.viewers)
    FROM fresh s CROSS JOIN (VALUES (300), (3600), (86400)) AS w (width)
    WHERE s.live
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (company_id, width, bucket, creator_id) DO UPDATE SET
        samples = v.samples + EXCLUDED.samples,
        viewer_sum = v.viewer_sum + EXCLUDED.viewer_sum,
        viewer_peak = greatest(v.viewer_peak, EXCLUDED.viewer_peak);
    RETURN NULL;
END
$$;

CREATE TRIGGER analytics_samples AFTER INSERT ON viewer_samples
    REFERENCING NEW TABLE AS fresh
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_add_samples();
