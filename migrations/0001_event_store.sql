-- The event store: the only truth. Column names follow postgres-es so its repository can read
-- streams; the extra columns give a gap-safe global feed (tx_id + global_position, DESIGN
-- invariant 2), the recording time, and a per-stream SHA-256 hash chain.
CREATE TABLE events (
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 1),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    global_position bigint      NOT NULL GENERATED ALWAYS AS IDENTITY,
    recorded_at     timestamptz NOT NULL,
    prev_hash       bytea,
    hash            bytea       NOT NULL,
    CONSTRAINT events_stream_sequence PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE UNIQUE INDEX events_global_position ON events (global_position);
-- Projectors read in (tx_id, global_position) order, below the oldest running transaction.
CREATE INDEX events_feed ON events (tx_id, global_position);

-- Live identifiers, claimed and released inside the append transaction (DESIGN invariant 3):
-- the primary key makes "no two registrants hold one system|value" hold under concurrency.
-- Also the index that resolves an external identifier to its stream.
CREATE TABLE identifier_claims (
    system         text NOT NULL,
    value          text NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id   text NOT NULL,
    CONSTRAINT identifier_claims_unique PRIMARY KEY (system, value)
);
CREATE INDEX identifier_claims_by_stream ON identifier_claims (aggregate_type, aggregate_id);

-- Where each projector has got to in the feed. Advanced in the same transaction as the read
-- model changes it covers, so a crash never loses or doubles an event.
CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    tx_id      bigint      NOT NULL DEFAULT 0,
    position   bigint      NOT NULL DEFAULT 0,
    events     bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
