-- Which recipients a registrant's consents could admit at all (issue 10: "the consent filter
-- <= 2x the legal-basis cost"). A consent-bound search probes each candidate row's consents
-- and its groups' (`consent::push_visible`, two index descents and the rule per row); at
-- 1,000,000 people a month of birth dates has 1,240 candidates of which a client with
-- consents from one person in ten sees 124, so nine probes in ten found nothing. Each row now
-- carries the recipients named by the consents that could cover it: `o:` and the organisation
-- for a consent to specific recipients, `t:` and the organisation type for one to a category,
-- over its own consents and those of the groups it currently belongs to, withdrawn ones left
-- out (NULL when there are none). A search first keeps the rows whose `consent_reach` names
-- its client (a test of the row, or of the index entry where an index carries it) and probes
-- only those: the column may admit more than the probe (a consent out of force today, one
-- the recipient withdrew from for itself, one without the scope or field asked), never less,
-- and the probe alone decides.
--
-- Kept in the transaction that changes what it follows, by the triggers below (a consent's
-- row, a membership's row); set for every row at once after a rebuild (`fill_consent_reach`),
-- as the rebuild disables the triggers of the read models while it loads them. Both read
-- `consent_reach_keys`: one definition, so a replay writes the values the triggers wrote.
--
-- Concurrent writers: every change locks the rows it will set before it reads what they
-- reach, the group's row first, then the registrants' in one order, and reads in a statement
-- of its own, after the locks: its snapshot then sees what a writer it waited for committed.
-- Without the locks, two consents given at once to one person each wrote the reach it saw
-- (the second lost the first's recipient), and a person joining a household while the
-- household's consent was given was left out by both (each saw nothing of the other). The
-- order (group, then members, as a member's change locks them: its append writes the group's
-- row) keeps a household's withdrawal and the removal of one of its members from deadlocking.

ALTER TABLE individual_view ADD COLUMN consent_reach text[];
ALTER TABLE group_view ADD COLUMN consent_reach text[];

-- Each subject's keys: those of its own consents and of its current groups' (withdrawn ones
-- left out), one row per key and consent.
CREATE VIEW consent_reach_keys AS
    SELECT c.subject_id AS subject, k.key
    FROM consent_index c
    CROSS JOIN LATERAL (
        SELECT 'o:' || r FROM unnest(c.recipients) AS r WHERE c.recipient_mode = 'specific'
        UNION ALL
        SELECT 't:' || t FROM unnest(c.recipient_types) AS t WHERE c.recipient_mode = 'category'
    ) AS k(key)
    WHERE c.status <> 'withdrawn'
    UNION ALL
    SELECT m.individual_id, k.key
    FROM group_membership_index m
    JOIN consent_index c ON c.subject_id = m.group_id
    CROSS JOIN LATERAL (
        SELECT 'o:' || r FROM unnest(c.recipients) AS r WHERE c.recipient_mode = 'specific'
        UNION ALL
        SELECT 't:' || t FROM unnest(c.recipient_types) AS t WHERE c.recipient_mode = 'category'
    ) AS k(key)
    WHERE c.status <> 'withdrawn';

-- Sets `consent_reach` of `subjects` (individuals or groups) to what their consents now say:
-- locks their rows (groups', then registrants', each in one order), then reads and writes in
-- a statement of its own (see above). PL/pgSQL keeps the statement's plan for the session.
CREATE FUNCTION refresh_consent_reach(subjects text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM group_view WHERE aggregate_id = ANY (subjects)
    ORDER BY aggregate_id FOR NO KEY UPDATE;
    PERFORM 1 FROM individual_view WHERE aggregate_id = ANY (subjects)
    ORDER BY aggregate_id FOR NO KEY UPDATE;
    WITH reach AS (
        SELECT s, (SELECT array_agg(DISTINCT k.key ORDER BY k.key)
                   FROM consent_reach_keys k WHERE k.subject = s) AS reach
        FROM unnest(subjects) AS s),
    individuals AS (
        UPDATE individual_view v SET consent_reach = r.reach FROM reach r
        WHERE v.aggregate_id = r.s AND v.consent_reach IS DISTINCT FROM r.reach)
    UPDATE group_view v SET consent_reach = r.reach FROM reach r
    WHERE v.aggregate_id = r.s AND v.consent_reach IS DISTINCT FROM r.reach;
END $$;

-- A consent given, renewed, withdrawn: its subject, and the current members of a group (read
-- once the group's row is held, so that a member joining at once is seen, or waits).
CREATE FUNCTION consent_index_give_reach() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM group_view WHERE aggregate_id = NEW.subject_id FOR NO KEY UPDATE;
    PERFORM refresh_consent_reach(ARRAY[NEW.subject_id] || ARRAY(
        SELECT m.individual_id FROM group_membership_index m WHERE m.group_id = NEW.subject_id
        ORDER BY m.individual_id));
    RETURN NULL;
END $$;

CREATE TRIGGER consent_index_reach AFTER INSERT ON consent_index
    FOR EACH ROW EXECUTE FUNCTION consent_index_give_reach();
CREATE TRIGGER consent_index_reach_changed AFTER UPDATE OF status ON consent_index
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION consent_index_give_reach();

-- A member joins or leaves a group: what it can be seen by changes only if the group has a
-- consent of its own, read once the group's row is held (see `consent_index_give_reach`).
CREATE FUNCTION group_membership_index_give_reach() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    grp text;
    member text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        grp := OLD.group_id;
        member := OLD.individual_id;
    ELSE
        grp := NEW.group_id;
        member := NEW.individual_id;
    END IF;
    PERFORM 1 FROM group_view WHERE aggregate_id = grp FOR NO KEY UPDATE;
    IF EXISTS (SELECT 1 FROM consent_index c WHERE c.subject_id = grp) THEN
        PERFORM refresh_consent_reach(ARRAY[member]);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER group_membership_index_reach AFTER INSERT OR DELETE ON group_membership_index
    FOR EACH ROW EXECUTE FUNCTION group_membership_index_give_reach();

-- Every row's `consent_reach`, from a state where none is set (the rebuild's load, whose
-- indexes are not built yet): one grouping of every key, joined to the rows by hash, rather
-- than a read of the keys per subject (which, without the consent index's own index, read
-- every consent per subject: 40 s for 20,000).
CREATE FUNCTION fill_consent_reach() RETURNS void
LANGUAGE sql AS $$
    WITH reach AS (
        SELECT subject, array_agg(DISTINCT key ORDER BY key) AS reach
        FROM consent_reach_keys GROUP BY subject),
    individuals AS (
        UPDATE individual_view v SET consent_reach = r.reach FROM reach r
        WHERE v.aggregate_id = r.subject AND v.consent_reach IS DISTINCT FROM r.reach)
    UPDATE group_view v SET consent_reach = r.reach FROM reach r
    WHERE v.aggregate_id = r.subject AND v.consent_reach IS DISTINCT FROM r.reach;
$$;

SELECT fill_consent_reach();

-- The indexes a newest-first page and a birth-date range read without the table (migration
-- 0250) carry the column, so that a consent-bound search tests it there too.
DROP INDEX individual_view_last_updated;
CREATE INDEX individual_view_last_updated ON individual_view (last_updated, aggregate_id)
    INCLUDE (name_search, birth_date, gender_code, consent_reach);
DROP INDEX individual_view_birth_date;
CREATE INDEX individual_view_birth_date ON individual_view (birth_date, aggregate_id)
    INCLUDE (last_updated, consent_reach);

-- The newest rows some consent reaches, for a consent-bound client's newest-first page and
-- count (`Newest::Reached`): its rows are among them and nowhere else, so it reads a tenth of
-- the entries where one person in ten has consented. New registrants (reached by none) never
-- enter it. Its condition is written as no search filter implies it (`consent_reach && …`
-- implies `consent_reach IS NOT NULL`, and PostgreSQL then took the whole index into a bitmap
-- for a month of birth dates); only the reads that name it use it. The column is never an
-- empty array (NULL where no consent reaches the row), so the two say the same.
CREATE INDEX individual_view_reached ON individual_view (last_updated, aggregate_id)
    INCLUDE (name_search, birth_date, gender_code, consent_reach)
    WHERE cardinality(consent_reach) > 0;

-- What share of the rows some consent reaches, for the plans of the reads above: without it
-- PostgreSQL takes a condition on an expression to hold for one row in three.
CREATE STATISTICS individual_view_reached_share ON (cardinality(consent_reach))
    FROM individual_view;
