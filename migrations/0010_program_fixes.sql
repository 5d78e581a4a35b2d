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

