-- The archive's coverage: a manifest records the highest seq its export could see
-- (`covered_seq`), and holds a list of parts (an export and its later deltas), so a row
-- stored after its day was archived is exported as a delta and pruned only once covered.
-- depends: 0006.archive

ALTER TABLE archive_manifests
    ADD COLUMN covered_seq bigint NOT NULL DEFAULT 0 CHECK (covered_seq >= 0);

-- Existing manifests hold one export: object_keys {ndjson, parquet}, checksums likewise.
-- seq is allocated in commit order and an export read its day in one snapshot, so every row
-- of the day with seq <= last_seq was in it; a row stored later has a higher seq. That is
-- only trusted where it can be checked: an unpruned day whose rows up to last_seq still
-- number row_count. A pruned day's rows are gone (the old prune deleted by date, so a late
-- row it took is lost already); its manifest keeps last_seq as its coverage, and any row of
-- that day in the table now has a higher seq and is exported as a delta. Any other manifest
-- is emptied (no parts, nothing covered): the next run removes its objects and exports the
-- day afresh. The owner reads across companies here, once, with RLS not forced.
ALTER TABLE archive_manifests NO FORCE ROW LEVEL SECURITY;
ALTER TABLE events NO FORCE ROW LEVEL SECURITY;

UPDATE archive_manifests m SET
    object_keys = jsonb_build_array(m.object_keys || jsonb_build_object(
        'rows', m.row_count, 'first_seq', m.first_seq, 'last_seq', m.last_seq,
        'after_seq', 0, 'covered_seq', coalesce(m.last_seq, 0))),
    checksums = jsonb_build_array(m.checksums),
    covered_seq = coalesce(m.last_seq, 0)
WHERE jsonb_typeof(m.object_keys) = 'object'
  AND m.verified_at IS NOT NULL
  AND (m.pruned_at IS NOT NULL OR m.row_count = (
      SELECT count(*) FROM events e
      WHERE e.company_id = m.company_id
        AND e.occurred_at >= m.day::timestamp AT TIME ZONE 'UTC'
        AND e.occurred_at < (m.day + 1)::timestamp AT TIME ZONE 'UTC'
        AND e.seq <= m.last_seq));

UPDATE archive_manifests SET
    object_keys = '[]', checksums = '[]', row_count = 0, first_seq = NULL, last_seq = NULL,
    covered_seq = 0
WHERE jsonb_typeof(object_keys) <> 'array' OR jsonb_typeof(checksums) <> 'array';

ALTER TABLE archive_manifests FORCE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
