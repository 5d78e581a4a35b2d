-- A consent-bound count (issue 13: "a count by gender and program over 1,000,000 individuals
-- answers in under a second") builds the set of subjects its client's consents admit once, then
-- reads what it counts for those subjects. Two things made it slow at 1,000,000 people with
-- 100,000 consents for the client (psql, EXPLAIN ANALYZE):
--   * a count that needs a subject admitted to two things (a membership, and the registrant's
--     gender) built one set per thing, scanning the client's consents once for each;
--   * the set met the counted rows through a hash of 100,000 text ids probed by every one of
--     1,000,000 rows, or (when PostgreSQL guessed the set small) through 100,000 index probes.
-- Now the consents naming the client are read once (`consent_names`), each saying what it
-- admits to (`consent_scopes` and the purposes and fields), and the set, sorted, is merged
-- with an index of the counted rows in the same order. The order is the bytes' ("C"): the
-- database's collation (C.UTF-8) orders these ASCII ids the same way but compares them
-- through strcoll, a third slower to sort and merge.

-- "Names the client and is in force for it", and "has a scope on this resource type": the two
-- halves of `consent_covers` (migrations 0013, 0100), which is now their conjunction, so that
-- every reader still has one definition. Plain SQL functions of one expression: inlined, as
-- before (the recipients' GIN indexes are still used).
CREATE FUNCTION consent_names(
    c consent_index, organization text, organization_type text, today date
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT consent_in_force_for(c, organization, today)
       AND ((c.recipient_mode = 'specific' AND c.recipients @> ARRAY[organization])
            OR (c.recipient_mode = 'category' AND c.recipient_types @> ARRAY[organization_type]))
$$;

CREATE FUNCTION consent_scopes(c consent_index, resource_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT resource_type = ANY (c.resource_types) OR 'all' = ANY (c.resource_types)
$$;

CREATE OR REPLACE FUNCTION consent_covers(
    c consent_index, organization text, organization_type text, resource_type text, today date
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT consent_names(c, organization, organization_type, today)
       AND consent_scopes(c, resource_type)
$$;

-- The counted rows by subject, in byte order, carrying what is counted (index-only scans).
CREATE INDEX membership_view_admitted ON membership_view (beneficiary_id COLLATE "C")
    INCLUDE (beneficiary_type, program_id, status, gender_code, birth_date, group_type);
CREATE INDEX individual_view_admitted ON individual_view (aggregate_id COLLATE "C")
    INCLUDE (gender_code, birth_date);
CREATE INDEX group_view_admitted ON group_view (aggregate_id COLLATE "C") INCLUDE (group_type);

-- Memberships by beneficiary go back to the plain index of migration 0007: 0225 made it
-- carry the counted facts for a count's index-only probes, which `membership_view_admitted`
-- now serves.
DROP INDEX membership_view_beneficiary;
CREATE INDEX membership_view_beneficiary ON membership_view (beneficiary_id);
