-- Consents in force, written inside the append transaction of each consent event (like the
-- identifier claims), so a withdrawal is visible to the very next request of every process,
-- and a write that relies on a consent locks its row (FOR SHARE) until it commits: a
-- withdrawal is ordered before or after it, never in between (DESIGN invariant 5).
CREATE TABLE consent_index (
    consent_id      text    PRIMARY KEY,
    subject_type    text    NOT NULL,
    subject_id      text    NOT NULL,
    status          text    NOT NULL CHECK (status IN ('given', 'renewed', 'withdrawn')),
    recipient_mode  text    NOT NULL CHECK (recipient_mode IN ('specific', 'category')),
    recipients      text[]  NOT NULL,
    recipient_types text[]  NOT NULL,
    resource_types  text[]  NOT NULL,
    effective_date  date    NOT NULL,
    expiry_date     date    NOT NULL,
    terms           jsonb   NOT NULL
);
CREATE INDEX consent_index_subject ON consent_index (subject_id);
-- A consent-bound client's searches start from the consents that name it.
CREATE INDEX consent_index_recipients ON consent_index USING gin (recipients);
CREATE INDEX consent_index_recipient_types ON consent_index USING gin (recipient_types);
