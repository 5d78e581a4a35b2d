-- Signing keys are stored encrypted (XChaCha20-Poly1305) under a key-encryption key the operator
-- supplies, so whoever reads the database cannot mint tokens. `private_sealed` is nonce ||
-- ciphertext, bound to the key id; `sealed_with` is the fingerprint of the key-encryption key,
-- so a server given the wrong one says so at start. Keys stored in plaintext by earlier
-- versions (`private_der`) are sealed by the first server that starts with a key-encryption
-- key, which then empties `private_der`; a retired key keeps only its public half.
ALTER TABLE signing_keys ALTER COLUMN private_der DROP NOT NULL;
ALTER TABLE signing_keys ADD COLUMN private_sealed bytea;
ALTER TABLE signing_keys ADD COLUMN sealed_with text;

-- Any change to the keys, by the CLI or by hand, reaches every server process.
CREATE FUNCTION openspp_announce_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('openspp_signing_keys', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER signing_keys_announce AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION openspp_announce_key_change();
