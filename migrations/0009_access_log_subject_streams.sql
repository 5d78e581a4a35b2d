-- The streams behind each access-log entry's subjects. Never returned by the API (it speaks
-- external identifiers only); it lets `GET /AuditEvent?subject=` find every access to a subject,
-- whichever of its identifiers the access used, and the subjects a response named inside
-- another resource (a group's members, a membership's beneficiary).
ALTER TABLE access_log ADD COLUMN subject_streams text[] NOT NULL DEFAULT '{}';
CREATE INDEX access_log_subject_streams ON access_log USING gin (subject_streams);
