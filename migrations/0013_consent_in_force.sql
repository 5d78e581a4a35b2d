-- "A consent is in force" and "a consent lets this recipient use this resource type", spelled
-- once in SQL, as the domain spells them (`ConsentRecord::in_force` and `::covers`), and used by
-- both SQL readers: the append's hold on a consent a write relies on (`hold_consent` below) and
-- the consent filter of every search (`projections/src/consent.rs`). A test holds both
-- functions against the domain's rule over generated consents (projections/tests/consent_rule.rs).
--
-- Plain SQL functions of one expression: the planner inlines them, so a search plans exactly
-- as if the condition were written out (the recipients' GIN indexes and the hashed semi-join).
CREATE FUNCTION consent_in_force(c consent_index, today date) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT c.status IN ('given', 'renewed')
       AND c.effective_date <= today
       AND today <= c.expiry_date
$$;

CREATE FUNCTION consent_covers(
    c consent_index, organization text, organization_type text, resource_type text, today date
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT consent_in_force(c, today)
       AND ((c.recipient_mode = 'specific' AND c.recipients @> ARRAY[organization])
            OR (c.recipient_mode = 'category' AND c.recipient_types @> ARRAY[organization_type]))
       AND (resource_type = ANY (c.resource_types) OR 'all' = ANY (c.resource_types))
$$;

-- Holds the consent a write relies on until the write commits, and fails (SQLSTATE OS001) if it
-- is no longer in force: a concurrent withdrawal (an UPDATE of that row) waits for the write, or
-- the write sees it. When it is a household's consent relied on for one of its members
-- (`subject`), the membership is held the same way: a concurrent removal (a DELETE of that row)
-- waits, or is seen. Called from inside the append statement, before any of its writes.
CREATE FUNCTION hold_consent(consent text, subject text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    holder text;
BEGIN
    SELECT c.subject_id INTO holder FROM consent_index c
    WHERE c.consent_id = consent AND consent_in_force(c, (now() AT TIME ZONE 'UTC')::date)
    FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the consent relied on is no longer in force' USING ERRCODE = 'OS001';
    END IF;
    IF subject IS NOT NULL AND subject <> holder THEN
        PERFORM 1 FROM group_membership_index m
        WHERE m.group_id = holder AND m.individual_id = subject
        FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'the consent relied on no longer covers the subject'
                USING ERRCODE = 'OS001';
        END IF;
    END IF;
    RETURN true;
END $$;
