-- Programs and program memberships (issue 4): read models built by the projector.
INSERT INTO vocabularies (namespace_uri, name) VALUES ('urn:openspp:vocab:program-type', 'Program type');
INSERT INTO vocabulary_codes (namespace_uri, code, display, uri, target_type, sequence) VALUES
    ('urn:openspp:vocab:program-type', 'social-protection', 'Social protection', 'urn:openspp:vocab:program-type#social-protection', 'both', 1),
    ('urn:openspp:vocab:program-type', 'cash-transfer', 'Cash transfer', 'urn:openspp:vocab:program-type#cash-transfer', 'both', 2),
    ('urn:openspp:vocab:program-type', 'in-kind', 'In-kind transfer', 'urn:openspp:vocab:program-type#in-kind', 'both', 3),
    ('urn:openspp:vocab:program-type', 'service', 'Service', 'urn:openspp:vocab:program-type#service', 'both', 4);

CREATE TABLE program_view (
    aggregate_id       text        PRIMARY KEY,
    version            bigint      NOT NULL,
    state              jsonb       NOT NULL,
    primary_identifier text,
    identifiers        text[]      NOT NULL,
    name_search        text        NOT NULL,
    name               text        NOT NULL,
    status             text        NOT NULL,
    target_type        text        NOT NULL,
    created_at         timestamptz NOT NULL,
    last_updated       timestamptz NOT NULL,
    source             text
);
CREATE INDEX program_view_name ON program_view USING gin (name_search gin_trgm_ops);
CREATE INDEX program_view_identifiers ON program_view USING gin (identifiers);
CREATE INDEX program_view_last_updated ON program_view (last_updated, aggregate_id);

CREATE TABLE membership_view (
    aggregate_id       text        PRIMARY KEY,
    version            bigint      NOT NULL,
    state              jsonb       NOT NULL,
    primary_identifier text,
    program_id         text        NOT NULL,
    beneficiary_id     text        NOT NULL,
    beneficiary_type   text        NOT NULL,
    status             text        NOT NULL,
    created_at         timestamptz NOT NULL,
    last_updated       timestamptz NOT NULL,
    source             text
);
CREATE INDEX membership_view_program ON membership_view (program_id, status, aggregate_id);
CREATE INDEX membership_view_beneficiary ON membership_view (beneficiary_id);
CREATE INDEX membership_view_last_updated ON membership_view (last_updated, aggregate_id);

-- Counts per program and status, for analysts: derived from the read model, so always in step
-- with it and rebuilt with it.
CREATE VIEW membership_counts AS
    SELECT program_id, status, count(*) AS members FROM membership_view GROUP BY program_id, status;
