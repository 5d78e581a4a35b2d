-- Program delivery (issue 16): cycles and entitlements, kept inline by the append that changes
-- them (projections/src/delivery.rs), and each cycle's statistics, kept by the same appends from
-- what each entitlement change adds and takes away, so that reading a cycle never counts.

CREATE TABLE cycle_view (
    aggregate_id text        PRIMARY KEY,
    version      bigint      NOT NULL,
    state        jsonb       NOT NULL,
    name         text        NOT NULL,
    program_id   text        NOT NULL,
    sequence     integer     NOT NULL,
    status       text        NOT NULL,
    start_date   date        NOT NULL,
    end_date     date        NOT NULL,
    created_at   timestamptz NOT NULL,
    last_updated timestamptz NOT NULL,
    source       text
);
CREATE INDEX cycle_view_program ON cycle_view (program_id, sequence);
CREATE INDEX cycle_view_sequence ON cycle_view (sequence, aggregate_id);
CREATE INDEX cycle_view_last_updated ON cycle_view (last_updated, aggregate_id);

CREATE TABLE entitlement_view (
    aggregate_id   text        PRIMARY KEY,
    version        bigint      NOT NULL,
    state          jsonb       NOT NULL,
    code           text        NOT NULL,
    program_id     text        NOT NULL,
    cycle_id       text        NOT NULL,
    beneficiary_id text        NOT NULL,
    kind           text        NOT NULL,
    status         text        NOT NULL,
    -- The cash amount in hundredths; 0 for goods.
    amount_cents   bigint      NOT NULL,
    valid_from     date        NOT NULL,
    valid_until    date        NOT NULL,
    created_at     timestamptz NOT NULL,
    last_updated   timestamptz NOT NULL,
    source         text
);
CREATE INDEX entitlement_view_cycle ON entitlement_view (cycle_id);
CREATE INDEX entitlement_view_program ON entitlement_view (program_id);
CREATE INDEX entitlement_view_beneficiary ON entitlement_view (beneficiary_id);
CREATE INDEX entitlement_view_created ON entitlement_view (created_at DESC, aggregate_id);

-- The beneficiaries with an entitlement in each cycle (a cycle's members), so that a new member
-- is counted once however many entitlements it is given.
CREATE TABLE cycle_beneficiaries (
    cycle_id       text NOT NULL,
    beneficiary_id text NOT NULL,
    PRIMARY KEY (cycle_id, beneficiary_id)
);

-- Per cycle: members, cash entitlements and their total (hundredths), and entitlements paid
-- to their beneficiaries, as OpenSPP's cycle statistics count them.
CREATE TABLE cycle_statistics (
    cycle_id     text   PRIMARY KEY,
    members      bigint NOT NULL,
    entitlements bigint NOT NULL,
    total_cents  bigint NOT NULL,
    payments     bigint NOT NULL
);
