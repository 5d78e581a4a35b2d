-- Programs and memberships, fixes of issue 4.

-- Why a membership exited (OpenSPP's exit wizard records a free-text reason; these codes give
-- integrators a shared vocabulary, and a text-only reason stays accepted).
INSERT INTO vocabularies (namespace_uri, name) VALUES ('urn:openspp:vocab:exit-reason', 'Program exit reason');
INSERT INTO vocabulary_codes (namespace_uri, code, display, uri, target_type, sequence) VALUES
    ('urn:openspp:vocab:exit-reason', 'graduated', 'Graduated from the program', 'urn:openspp:vocab:exit-reason#graduated', 'both', 1),
    ('urn:openspp:vocab:exit-reason', 'no_longer_eligible', 'No longer eligible', 'urn:openspp:vocab:exit-reason#no_longer_eligible', 'both', 2),
    ('urn:openspp:vocab:exit-reason', 'moved', 'Moved out of the program area', 'urn:openspp:vocab:exit-reason#moved', 'both', 3),
    ('urn:openspp:vocab:exit-reason', 'deceased', 'Deceased', 'urn:openspp:vocab:exit-reason#deceased', 'both', 4),
    ('urn:openspp:vocab:exit-reason', 'voluntary', 'Left voluntarily', 'urn:openspp:vocab:exit-reason#voluntary', 'both', 5),
    ('urn:openspp:vocab:exit-reason', 'non_compliance', 'Did not meet the program conditions', 'urn:openspp:vocab:exit-reason#non_compliance', 'both', 6),
    ('urn:openspp:vocab:exit-reason', 'program_ended', 'The program ended', 'urn:openspp:vocab:exit-reason#program_ended', 'both', 7),
    ('urn:openspp:vocab:exit-reason', 'other', 'Other', 'urn:openspp:vocab:exit-reason#other', 'both', 8);

-- A client's allowed programs are the programs themselves (their streams), no longer the
-- `system|value` strings given at creation: a name alias moves with a rename, so a string
-- would lose the program and find whichever program takes the old name next. An entry that
-- names no program is kept as it was: it matches no stream, so the client stays limited.
COMMENT ON COLUMN api_clients.allowed_programs IS
    'Streams of the programs the client is limited to (internal; never shown); empty = all';
UPDATE api_clients SET allowed_programs = ARRAY(
    SELECT coalesce(
        (SELECT c.aggregate_id FROM identifier_claims c
         WHERE c.aggregate_type = 'Program' AND c.system || '|' || c.value = entry.program),
        entry.program)
    FROM unnest(allowed_programs) WITH ORDINALITY AS entry(program, position)
    ORDER BY entry.position)
WHERE cardinality(allowed_programs) > 0;
