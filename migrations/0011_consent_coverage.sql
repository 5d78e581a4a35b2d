-- Who currently belongs to which group, written inside the append transaction of each member
-- event (like the consent index), because a household's consent covers exactly its current
-- members: coverage read from the asynchronous group_members_view could outlive a removal by
-- the projector's lag. A write relying on a household's consent for a member locks that
-- member's row (FOR SHARE), so a concurrent removal is ordered before or after it.
CREATE TABLE group_membership_index (
    group_id      text NOT NULL,
    individual_id text NOT NULL,
    PRIMARY KEY (group_id, individual_id)
);
CREATE INDEX group_membership_index_individual ON group_membership_index (individual_id);

-- Current members, from the log: a member whose latest member event in a group is an addition.
INSERT INTO group_membership_index (group_id, individual_id)
SELECT aggregate_id, individual
FROM (
    SELECT DISTINCT ON (aggregate_id, individual) aggregate_id, individual, event_type
    FROM (
        SELECT aggregate_id, sequence, event_type, payload -> event_type ->> 'individual' AS individual
        FROM events
        WHERE aggregate_type = 'Group' AND event_type IN ('MemberAdded', 'MembershipEnded')
    ) member_events
    ORDER BY aggregate_id, individual, sequence DESC
) latest
WHERE event_type = 'MemberAdded';
