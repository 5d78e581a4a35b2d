-- Products (issue 16): goods an in-kind entitlement delivers, kept inline by their appends
-- (projections/src/product.rs). `key` is OpenSPP's identifier (default code, else name).
CREATE TABLE product_view (
    aggregate_id    text        PRIMARY KEY,
    version         bigint      NOT NULL,
    state           jsonb       NOT NULL,
    key             text        NOT NULL,
    name            text        NOT NULL,
    code            text        NOT NULL,
    category        text        NOT NULL,
    created_at      timestamptz NOT NULL,
    last_updated    timestamptz NOT NULL,
    source          text
);
CREATE INDEX product_view_name ON product_view (name, aggregate_id);
CREATE INDEX product_view_last_updated ON product_view (last_updated, aggregate_id);
