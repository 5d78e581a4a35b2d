-- Vocabularies (code systems with namespace URIs; reference §4, ADR-009). Coded values in
-- commands must exist here; the server loads these tables at start.
CREATE TABLE vocabularies (
    namespace_uri   text    PRIMARY KEY,
    name            text    NOT NULL,
    version         text,
    is_system       boolean NOT NULL DEFAULT true,
    is_hierarchical boolean NOT NULL DEFAULT false
);

CREATE TABLE vocabulary_codes (
    namespace_uri text    NOT NULL REFERENCES vocabularies (namespace_uri),
    code          text    NOT NULL,
    display       text    NOT NULL,
    definition    text,
    -- `{namespace}#{code}` unless overridden (identifier types use it as their system URI).
    uri           text    NOT NULL UNIQUE,
    parent_code   text,
    target_type   text    NOT NULL DEFAULT 'both' CHECK (target_type IN ('individual', 'group', 'both')),
    active        boolean NOT NULL DEFAULT true,
    deprecated    boolean NOT NULL DEFAULT false,
    sequence      integer NOT NULL DEFAULT 10,
    PRIMARY KEY (namespace_uri, code)
);

INSERT INTO vocabularies (namespace_uri, name, version) VALUES
    ('urn:iso:std:iso:5218', 'Gender (ISO 5218)', '2022'),
    ('urn:openspp:vocab:group-membership-type', 'Group membership type', NULL),
    ('urn:openspp:vocab:relationship', 'Relationship type', NULL),
    ('urn:openspp:vocab:id-type', 'ID type', NULL),
    ('urn:openspp:vocab:group-type', 'Group type', NULL),
    ('urn:un:unsd:pop-census:marital-status', 'Marital status (UN census rev. 3)', '2017');

INSERT INTO vocabulary_codes (namespace_uri, code, display, uri, target_type, sequence) VALUES
    ('urn:iso:std:iso:5218', '0', 'Not Known', 'urn:iso:std:iso:5218#0', 'both', 1),
    ('urn:iso:std:iso:5218', '1', 'Male', 'urn:iso:std:iso:5218#1', 'both', 2),
    ('urn:iso:std:iso:5218', '2', 'Female', 'urn:iso:std:iso:5218#2', 'both', 3),
    ('urn:iso:std:iso:5218', '9', 'Not Applicable', 'urn:iso:std:iso:5218#9', 'both', 4),

    ('urn:openspp:vocab:group-membership-type', 'head', 'Head of Household', 'urn:openspp:vocab:group-membership-type#head', 'both', 1),
    ('urn:openspp:vocab:group-membership-type', 'spouse', 'Spouse', 'urn:openspp:vocab:group-membership-type#spouse', 'both', 2),
    ('urn:openspp:vocab:group-membership-type', 'child', 'Child', 'urn:openspp:vocab:group-membership-type#child', 'both', 3),
    ('urn:openspp:vocab:group-membership-type', 'member', 'Member', 'urn:openspp:vocab:group-membership-type#member', 'both', 4),
    ('urn:openspp:vocab:group-membership-type', 'other', 'Other', 'urn:openspp:vocab:group-membership-type#other', 'both', 5),

    ('urn:openspp:vocab:relationship', 'head', 'Head', 'urn:openspp:vocab:relationship#head', 'both', 1),
    ('urn:openspp:vocab:relationship', 'spouse', 'Spouse', 'urn:openspp:vocab:relationship#spouse', 'both', 2),
    ('urn:openspp:vocab:relationship', 'child', 'Child', 'urn:openspp:vocab:relationship#child', 'both', 3),
    ('urn:openspp:vocab:relationship', 'child_in_law', 'Child-in-law', 'urn:openspp:vocab:relationship#child_in_law', 'both', 4),
    ('urn:openspp:vocab:relationship', 'grandchild', 'Grandchild', 'urn:openspp:vocab:relationship#grandchild', 'both', 5),
    ('urn:openspp:vocab:relationship', 'parent', 'Parent', 'urn:openspp:vocab:relationship#parent', 'both', 6),
    ('urn:openspp:vocab:relationship', 'parent_in_law', 'Parent-in-law', 'urn:openspp:vocab:relationship#parent_in_law', 'both', 7),
    ('urn:openspp:vocab:relationship', 'grandparent', 'Grandparent', 'urn:openspp:vocab:relationship#grandparent', 'both', 8),
    ('urn:openspp:vocab:relationship', 'sibling', 'Sibling', 'urn:openspp:vocab:relationship#sibling', 'both', 9),
    ('urn:openspp:vocab:relationship', 'other_relative', 'Other relative', 'urn:openspp:vocab:relationship#other_relative', 'both', 10),
    ('urn:openspp:vocab:relationship', 'non_relative', 'Non-relative', 'urn:openspp:vocab:relationship#non_relative', 'both', 11),
    ('urn:openspp:vocab:relationship', 'parent_organization', 'Parent organization', 'urn:openspp:vocab:relationship#parent_organization', 'both', 12),
    ('urn:openspp:vocab:relationship', 'subsidiary', 'Subsidiary', 'urn:openspp:vocab:relationship#subsidiary', 'both', 13),
    ('urn:openspp:vocab:relationship', 'partner_organization', 'Partner organization', 'urn:openspp:vocab:relationship#partner_organization', 'both', 14),
    ('urn:openspp:vocab:relationship', 'affiliated_with', 'Affiliated with', 'urn:openspp:vocab:relationship#affiliated_with', 'both', 15),

    ('urn:openspp:vocab:id-type', 'national_id', 'National ID', 'urn:openspp:vocab:id-type#national_id', 'individual', 1),
    ('urn:openspp:vocab:id-type', 'passport', 'Passport', 'urn:openspp:vocab:id-type#passport', 'individual', 2),
    ('urn:openspp:vocab:id-type', 'tax_id', 'Tax ID', 'urn:openspp:vocab:id-type#tax_id', 'both', 3),
    ('urn:openspp:vocab:id-type', 'birth_certificate', 'Birth certificate', 'urn:openspp:vocab:id-type#birth_certificate', 'individual', 4),
    ('urn:openspp:vocab:id-type', 'household_id', 'Household ID', 'urn:openspp:vocab:id-type#household_id', 'group', 5),
    -- ADR-007 namespace URIs for a country's and an organisation's own identifier systems.
    ('urn:openspp:vocab:id-type', 'ph_national_id', 'Philippine national ID (PhilSys)', 'urn:gov:ph:psa:national-id', 'individual', 6),
    ('urn:openspp:vocab:id-type', 'openspp_group', 'OpenSPP group number', 'urn:openspp:group', 'group', 7),

    ('urn:openspp:vocab:group-type', 'household', 'Household', 'urn:openspp:vocab:group-type#household', 'group', 1),
    ('urn:openspp:vocab:group-type', 'family', 'Family', 'urn:openspp:vocab:group-type#family', 'group', 2),
    ('urn:openspp:vocab:group-type', 'organization', 'Organization', 'urn:openspp:vocab:group-type#organization', 'group', 3),
    ('urn:openspp:vocab:group-type', 'other', 'Other', 'urn:openspp:vocab:group-type#other', 'group', 4),

    ('urn:un:unsd:pop-census:marital-status', 'S', 'Never Married', 'urn:un:unsd:pop-census:marital-status#S', 'individual', 1),
    ('urn:un:unsd:pop-census:marital-status', 'M', 'Married', 'urn:un:unsd:pop-census:marital-status#M', 'individual', 2),
    ('urn:un:unsd:pop-census:marital-status', 'W', 'Widowed', 'urn:un:unsd:pop-census:marital-status#W', 'individual', 3),
    ('urn:un:unsd:pop-census:marital-status', 'D', 'Divorced', 'urn:un:unsd:pop-census:marital-status#D', 'individual', 4),
    ('urn:un:unsd:pop-census:marital-status', 'L', 'Separated', 'urn:un:unsd:pop-census:marital-status#L', 'individual', 5),
    ('urn:un:unsd:pop-census:marital-status', 'C', 'Consensual Union', 'urn:un:unsd:pop-census:marital-status#C', 'individual', 6);
