-- The epoch of a company's event stream: clients resume by (epoch, seq); a stream that was
-- rebuilt (a restored database, say) gets a new epoch, and a client holding the old one is
-- told to resync instead of being given a partial recovery.
-- depends: 0003.ingestion

ALTER TABLE event_sequences ADD COLUMN epoch uuid NOT NULL DEFAULT gen_random_uuid();
