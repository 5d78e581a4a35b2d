-- What `openspp import` has loaded, batch by batch (CONTRACT §10): one row per committed batch
-- of a file (by the file's SHA-256), written in the SAME statement as the batch's events, so a
-- batch is either loaded and recorded or neither. A rerun skips the lines these ranges cover:
-- every row is loaded exactly once, however often the import is interrupted.
CREATE TABLE import_batches (
    file_hash   text        NOT NULL,
    first_line  bigint      NOT NULL,
    last_line   bigint      NOT NULL,
    loaded      integer     NOT NULL,
    -- The rows refused in the batch: [{"line": n, "reason": "..."}].
    refused     jsonb       NOT NULL DEFAULT '[]',
    source      text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (file_hash, first_line)
);
