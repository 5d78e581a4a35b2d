-- FHIR AuditEvent's action code for every access (C create, R read, U update, D delete,
-- E execute: searches and operations), recorded by the request that made it. Entries written
-- before this column existed are given the code their interaction implies (every write was
-- logged as an update then).
ALTER TABLE access_log ADD COLUMN action text NOT NULL DEFAULT 'R'
    CHECK (action IN ('C', 'R', 'U', 'D', 'E'));
ALTER TABLE access_log DISABLE TRIGGER access_log_append_only;
UPDATE access_log SET action = CASE interaction WHEN 'write' THEN 'U' WHEN 'search' THEN 'E' ELSE 'R' END;
ALTER TABLE access_log ENABLE TRIGGER access_log_append_only;
ALTER TABLE access_log ALTER COLUMN action DROP DEFAULT;
