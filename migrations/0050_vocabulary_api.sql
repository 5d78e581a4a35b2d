-- Vocabularies as OpenSPP's Vocabulary API serves them (CONTRACT §8): each vocabulary's
-- description, reference and domain. These tables stay the *baseline* shipped with the server;
-- operators' changes are `Vocabulary` events laid over it (src/vocabulary.rs).
ALTER TABLE vocabularies
    ADD COLUMN description   text,
    ADD COLUMN reference_url text,
    ADD COLUMN domain        text NOT NULL DEFAULT 'core' CHECK (domain IN ('core',
        'social_assistance', 'social_insurance', 'labor', 'disability', 'agriculture', 'health',
        'education'));

UPDATE vocabularies SET description = 'ISO/IEC 5218 codes for the representation of human sexes.',
                        reference_url = 'https://www.iso.org/standard/81682.html'
 WHERE namespace_uri = 'urn:iso:std:iso:5218';
UPDATE vocabularies SET description = 'Identifier types; each code''s URI is an identifier system (ADR-007).'
 WHERE namespace_uri = 'urn:openspp:vocab:id-type';
UPDATE vocabularies SET domain = 'social_assistance'
 WHERE namespace_uri IN ('urn:openspp:vocab:program-type', 'urn:openspp:vocab:exit-reason');

-- Every server process reloads the vocabularies and the extension registry when they change:
-- the notification comes from the very transaction that appends the change (src/catalog_sync.rs).
-- The WHEN clause keeps every other append free of the trigger function.
CREATE FUNCTION notify_catalog_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('openspp_catalog', NEW.aggregate_type);
    RETURN NULL;
END
$$;

CREATE TRIGGER events_catalog_change AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.aggregate_type IN ('Vocabulary', 'Extension'))
    EXECUTE FUNCTION notify_catalog_change();
