-- No statement reads the event store by `global_position` alone: the feed, catch-up, replay,
-- the settling of a broken append, the metrics' lag and the DCI subscriptions all read in
-- `(tx_id, global_position)` order through `events_feed`, and a stream is read by its primary
-- key. The unique index on the position cost two B-tree inserts per registration (issue 10:
-- the write path's work per request) and answered nothing. Positions stay unique: the column
-- is generated always as an identity, and no statement here overrides it.
DROP INDEX IF EXISTS events_global_position;
