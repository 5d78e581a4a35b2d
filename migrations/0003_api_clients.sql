-- API clients (CONTRACT §3): created only by the operator's CLI; secrets stored argon2id-hashed.
CREATE TABLE api_clients (
    client_id             text        PRIMARY KEY,
    name                  text        NOT NULL,
    organization          text        NOT NULL,
    organization_type     text        NOT NULL,
    secret_hash           text        NOT NULL,
    scopes                text[]      NOT NULL,
    allowed_programs      text[]      NOT NULL DEFAULT '{}',
    require_consent       boolean     NOT NULL DEFAULT true,
    legal_basis           text,
    rate_limit_per_minute integer     NOT NULL DEFAULT 60 CHECK (rate_limit_per_minute >= 0),
    rate_limit_per_day    integer     NOT NULL DEFAULT 10000 CHECK (rate_limit_per_day >= 0),
    active                boolean     NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    deactivated_at        timestamptz
);

-- Token-signing keys, shared by every server process on this database. Retired keys no longer
-- verify; the newest active key signs.
CREATE TABLE signing_keys (
    kid         text        PRIMARY KEY,
    algorithm   text        NOT NULL,
    private_der bytea       NOT NULL,
    public_key  bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);

-- Fixed-window request counters for rate limits. UNLOGGED: no WAL and no fsync per request;
-- a crash forgets the current windows, which only ever errs in the caller's favour.
CREATE UNLOGGED TABLE rate_counters (
    key          text        NOT NULL,
    window_start timestamptz NOT NULL,
    used         integer     NOT NULL,
    PRIMARY KEY (key, window_start)
);
