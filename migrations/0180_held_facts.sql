-- The read-model facts a command was decided on besides its own stream and its consent: the
-- state of an entitlement's cycle (entitlements are added to a draft cycle, approved under an
-- approving one, paid under a paying one) and its beneficiary's enrolment in the program.
-- `hold_status` holds the row (FOR SHARE) until the write commits, with the condition in the
-- WHERE: a concurrent change of that row (an append's UPDATE of it) waits for the write, or, if
-- it took the row first, the write waits for it and then sees it (READ COMMITTED evaluates the
-- condition again on the row's committed version) and fails with SQLSTATE OS002, writing
-- nothing; the command is then decided again on what now holds. Called from inside the append
-- statement, before any of its writes, as `hold_consent` is (migrations 0013, 0100).
CREATE FUNCTION hold_status(aggregate_type text, stream text, expected text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF aggregate_type = 'Cycle' THEN
        PERFORM 1 FROM cycle_view v
        WHERE v.aggregate_id = stream AND v.status = expected
        FOR SHARE;
    ELSIF aggregate_type = 'ProgramMembership' THEN
        PERFORM 1 FROM membership_view v
        WHERE v.aggregate_id = stream AND v.status = expected
        FOR SHARE;
    ELSE
        RAISE EXCEPTION 'no read model holds the status of a %', aggregate_type;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the % a write relied on is no longer %', aggregate_type, expected
            USING ERRCODE = 'OS002';
    END IF;
    RETURN true;
END $$;
