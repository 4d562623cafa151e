-- The archive as an Athena table (created by terraform; ${bucket} is substituted there).
-- Partition projection: no crawler and no MSCK REPAIR; every company_id/date path is
-- computed from the query's predicates. company_id is injected, so a query must name it:
-- one tenant's data at a time, by construction.
CREATE EXTERNAL TABLE IF NOT EXISTS controlroom_events (
    seq                 bigint,
    creator_id          string,
    twitch_message_id   string,
    dedup_key           string,
    type                string,
    version             string,
    topic               string,
    occurred_at         timestamp,
    received_at         timestamp,
    broadcaster_user_id string,
    actor_user_id       string,
    actor_login         string,
    actor_name          string,
    target_user_id      string,
    target_login        string,
    target_name         string,
    amount              bigint,
    tier                string,
    title               string,
    category_name       string,
    duration_seconds    int,
    message_text        string,
    outcome             string,
    level               int,
    payload             string
)
PARTITIONED BY (company_id string, `date` string)
STORED AS PARQUET
LOCATION 's3://${bucket}/events/'
TBLPROPERTIES (
    'parquet.compression' = 'ZSTD',
    'projection.enabled' = 'true',
    'projection.company_id.type' = 'injected',
    'projection.date.type' = 'date',
    'projection.date.format' = 'yyyy-MM-dd',
    'projection.date.range' = '2024-01-01,NOW',
    'projection.date.interval' = '1',
    'projection.date.interval.unit' = 'DAYS',
    'storage.location.template' = 's3://${bucket}/events/company_id=${company_id}/date=${date}/'
);
