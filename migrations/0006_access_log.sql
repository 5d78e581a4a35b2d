-- Every access to registrant data — reads and searches included (CONTRACT §6): who, for which
-- organisation, what was touched and returned, under which consent and purpose, and how it
-- ended. Append-only: rows can be added, never changed or removed.
CREATE TABLE access_log (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL,
    client_id     text        NOT NULL,
    organization  text        NOT NULL,
    resource_type text        NOT NULL,
    interaction   text        NOT NULL,
    subjects      text[]      NOT NULL,
    consent_ids   text[]      NOT NULL,
    purpose       text,
    fields        text[],
    outcome       smallint    NOT NULL,
    request_id    text        NOT NULL
);
CREATE INDEX access_log_at ON access_log (at);
CREATE INDEX access_log_client ON access_log (client_id, at);
CREATE INDEX access_log_subjects ON access_log USING gin (subjects);
CREATE INDEX access_log_consents ON access_log USING gin (consent_ids);

CREATE FUNCTION access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the access log is append-only';
END $$;
CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only();
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only();
