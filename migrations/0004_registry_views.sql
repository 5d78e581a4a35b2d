-- Read models of Individuals and Groups, built only by the projector from the event feed and
-- rebuildable at any time. `state` is the aggregate folded by the domain's own `apply`, so a read
-- model and a point-in-time read render through one path; the other columns exist for search.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE individual_view (
    aggregate_id       text        PRIMARY KEY,
    version            bigint      NOT NULL,
    state              jsonb       NOT NULL,
    primary_identifier text,
    name_search        text        NOT NULL,
    family_name        text,
    given_name         text,
    birth_date         date,
    gender_code        text,
    address_search     text        NOT NULL,
    active             boolean     NOT NULL,
    created_at         timestamptz NOT NULL,
    last_updated       timestamptz NOT NULL,
    source             text
);
CREATE INDEX individual_view_name ON individual_view USING gin (name_search gin_trgm_ops);
CREATE INDEX individual_view_address ON individual_view USING gin (address_search gin_trgm_ops);
CREATE INDEX individual_view_birth_date ON individual_view (birth_date, aggregate_id);
CREATE INDEX individual_view_gender ON individual_view (gender_code, aggregate_id);
CREATE INDEX individual_view_last_updated ON individual_view (last_updated, aggregate_id);
CREATE INDEX individual_view_family ON individual_view (family_name, given_name, aggregate_id);

CREATE TABLE group_view (
    aggregate_id       text        PRIMARY KEY,
    version            bigint      NOT NULL,
    state              jsonb       NOT NULL,
    primary_identifier text,
    name_search        text        NOT NULL,
    name               text,
    group_type         text        NOT NULL,
    quantity           integer     NOT NULL,
    active             boolean     NOT NULL,
    created_at         timestamptz NOT NULL,
    last_updated       timestamptz NOT NULL,
    source             text
);
CREATE INDEX group_view_name ON group_view USING gin (name_search gin_trgm_ops);
CREATE INDEX group_view_type ON group_view (group_type, aggregate_id);
CREATE INDEX group_view_last_updated ON group_view (last_updated, aggregate_id);
CREATE INDEX group_view_sort_name ON group_view (name, aggregate_id);

-- Who is in which group, for an Individual's `groupMembership` and member searches.
CREATE TABLE group_members_view (
    group_id      text    NOT NULL,
    individual_id text    NOT NULL,
    member_index  integer NOT NULL,
    roles         text[]  NOT NULL,
    start_date    date    NOT NULL,
    ended_date    date,
    PRIMARY KEY (group_id, member_index)
);
CREATE INDEX group_members_by_individual ON group_members_view (individual_id) WHERE ended_date IS NULL;

INSERT INTO projection_checkpoints (name) VALUES ('registry');
