-- A cycle's change moves its entitlements with it (OpenSPP's cascades: submitted, rejected, reset;
-- src/resource/cascade.rs): it reads which entitlements the cycle holds, decides each one's move,
-- and commits them with the cycle's own event in one statement. None may be added to the cycle or
-- written between that read and the commit, or it would be left behind (a draft entitlement in a
-- cycle under approval). `hold_status('CycleEntitlements', cycle, seen)` checks it: it first takes
-- the cycle's row (FOR NO KEY UPDATE), so it waits for every entitlement write in flight that was
-- decided on that row (they hold it FOR SHARE until they commit, `hold_status('Cycle', …)`), and
-- any later one waits for the change and then sees the cycle's new state; then it counts the
-- cycle's entitlements again (a new snapshot: plpgsql takes one per query) and fails with OS002
-- (`FactChanged`, writing nothing: the change is decided again) unless their number and the sum
-- of their versions are still `seen`.
CREATE OR REPLACE FUNCTION hold_status(aggregate_type text, stream text, expected text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    now_seen text;
BEGIN
    IF aggregate_type = 'Cycle' THEN
        PERFORM 1 FROM cycle_view v
        WHERE v.aggregate_id = stream AND v.status = expected
        FOR SHARE;
    ELSIF aggregate_type = 'ProgramMembership' THEN
        PERFORM 1 FROM membership_view v
        WHERE v.aggregate_id = stream AND v.status = expected
        FOR SHARE;
    ELSIF aggregate_type = 'CycleEntitlements' THEN
        PERFORM 1 FROM cycle_view v WHERE v.aggregate_id = stream FOR NO KEY UPDATE;
        SELECT count(*)::text || ':' || coalesce(sum(e.version), 0)::text INTO now_seen
        FROM entitlement_view e WHERE e.cycle_id = stream;
        IF now_seen IS DISTINCT FROM expected THEN
            RAISE EXCEPTION 'the entitlements of the cycle changed while it was being changed'
                USING ERRCODE = 'OS002';
        END IF;
        RETURN true;
    ELSE
        RAISE EXCEPTION 'no read model holds the status of a %', aggregate_type;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the % a write relied on is no longer %', aggregate_type, expected
            USING ERRCODE = 'OS002';
    END IF;
    RETURN true;
END $$;
