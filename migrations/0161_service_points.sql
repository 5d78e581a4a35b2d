-- Service points (issue 16): where beneficiaries collect, kept inline by their appends
-- (projections/src/service_point.rs), and the vocabulary of the services they offer.
INSERT INTO vocabularies (namespace_uri, name) VALUES ('urn:openspp:vocab:service-types', 'Service type');
INSERT INTO vocabulary_codes (namespace_uri, code, display, uri, target_type, sequence) VALUES
    ('urn:openspp:vocab:service-types', 'CASH', 'Cash Distribution', 'urn:openspp:vocab:service-types#CASH', 'both', 1),
    ('urn:openspp:vocab:service-types', 'VOUCHER', 'Voucher Redemption', 'urn:openspp:vocab:service-types#VOUCHER', 'both', 2),
    ('urn:openspp:vocab:service-types', 'INKIND', 'In-kind Distribution', 'urn:openspp:vocab:service-types#INKIND', 'both', 3);

CREATE TABLE service_point_view (
    aggregate_id    text        PRIMARY KEY,
    version         bigint      NOT NULL,
    state           jsonb       NOT NULL,
    name            text        NOT NULL,
    area            text        NOT NULL,
    country         text,
    contract_active boolean     NOT NULL,
    created_at      timestamptz NOT NULL,
    last_updated    timestamptz NOT NULL,
    source          text
);
CREATE INDEX service_point_view_name ON service_point_view (name, aggregate_id);
CREATE INDEX service_point_view_last_updated ON service_point_view (last_updated, aggregate_id);
