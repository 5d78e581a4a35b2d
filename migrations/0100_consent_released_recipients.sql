-- A recipient's `$revoke` withdraws a consent for that recipient only (issue 8, item 6): the
-- consent stays in force for the others, and the organisations that withdrew are kept here,
-- written from the consent's state inside the append statement like the rest of the row.
-- (No stored event can have released anyone before this migration, so none is released.)
ALTER TABLE consent_index
    ADD COLUMN released_recipients text[] NOT NULL DEFAULT '{}';

-- "In force for this recipient" and "covers", as the domain spells them
-- (`ConsentRecord::in_force_for` and `::covers`): a recipient that withdrew for itself is no
-- longer covered. `consent_in_force` (migration 0013) stays the consent's own state. The test
-- holding these against the domain's rule covers released recipients
-- (projections/tests/consent_rule.rs).
CREATE FUNCTION consent_in_force_for(c consent_index, organization text, today date)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT consent_in_force(c, today)
       AND NOT (c.released_recipients @> ARRAY[organization])
$$;

CREATE OR REPLACE FUNCTION consent_covers(
    c consent_index, organization text, organization_type text, resource_type text, today date
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT consent_in_force_for(c, organization, today)
       AND ((c.recipient_mode = 'specific' AND c.recipients @> ARRAY[organization])
            OR (c.recipient_mode = 'category' AND c.recipient_types @> ARRAY[organization_type]))
       AND (resource_type = ANY (c.resource_types) OR 'all' = ANY (c.resource_types))
$$;

-- The append's hold (migration 0013), now for the recipient that relies on the consent: a
-- write by a recipient racing its own withdrawal waits for it, or sees it, and fails as when
-- the consent lapses (SQLSTATE OS001). `recipient` is the writer's organisation.
DROP FUNCTION hold_consent(text, text);

CREATE FUNCTION hold_consent(consent text, subject text, recipient text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    holder text;
BEGIN
    SELECT c.subject_id INTO holder FROM consent_index c
    WHERE c.consent_id = consent
      AND consent_in_force_for(c, recipient, (now() AT TIME ZONE 'UTC')::date)
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
