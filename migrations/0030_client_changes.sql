-- Every server process keeps API clients in memory (no round trip per request). A change to a
-- client is announced in the same transaction that makes it, whoever makes it (the CLI or an
-- operator's own SQL), so every process drops its copy when the change commits.
--
-- `secret_version` counts secret rotations; tokens carry the version they were issued under, so
-- a rotation makes every earlier token fail at once.
ALTER TABLE api_clients ADD COLUMN secret_version integer NOT NULL DEFAULT 0;

CREATE FUNCTION openspp_announce_client_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('openspp_api_clients', OLD.client_id);
    ELSE
        PERFORM pg_notify('openspp_api_clients', NEW.client_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER api_clients_announce AFTER INSERT OR UPDATE OR DELETE ON api_clients
    FOR EACH ROW EXECUTE FUNCTION openspp_announce_client_change();
