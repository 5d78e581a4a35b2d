-- Product categories and units of measure (issue 16): OpenSPP's `product.category` and `uom.uom`
-- served as /ProductCategory and /UnitOfMeasure, kept as vocabularies operators extend through
-- /Vocabulary (each change an event). A category's parent is its parent category; a unit's
-- parent is its reference unit (OpenSPP 19's `relative_uom_id`).
INSERT INTO vocabularies (namespace_uri, name, is_hierarchical) VALUES
    ('urn:openspp:vocab:product-category', 'Product category', true),
    ('urn:openspp:vocab:uom', 'Unit of measure', true);
INSERT INTO vocabulary_codes (namespace_uri, code, display, uri, parent_code, sequence) VALUES
    ('urn:openspp:vocab:product-category', 'all', 'All', 'urn:openspp:vocab:product-category#all', NULL, 1),
    ('urn:openspp:vocab:product-category', 'food', 'Food', 'urn:openspp:vocab:product-category#food', 'all', 2),
    ('urn:openspp:vocab:product-category', 'non-food', 'Non-food', 'urn:openspp:vocab:product-category#non-food', 'all', 3),
    ('urn:openspp:vocab:product-category', 'hygiene', 'Hygiene', 'urn:openspp:vocab:product-category#hygiene', 'non-food', 4),
    ('urn:openspp:vocab:uom', 'unit', 'Unit', 'urn:openspp:vocab:uom#unit', NULL, 1),
    ('urn:openspp:vocab:uom', 'sack', 'Sack', 'urn:openspp:vocab:uom#sack', 'unit', 2),
    ('urn:openspp:vocab:uom', 'pack', 'Pack', 'urn:openspp:vocab:uom#pack', 'unit', 3),
    ('urn:openspp:vocab:uom', 'kg', 'kg', 'urn:openspp:vocab:uom#kg', NULL, 4),
    ('urn:openspp:vocab:uom', 'g', 'g', 'urn:openspp:vocab:uom#g', 'kg', 5),
    ('urn:openspp:vocab:uom', 'l', 'L', 'urn:openspp:vocab:uom#l', NULL, 6),
    ('urn:openspp:vocab:uom', 'ml', 'mL', 'urn:openspp:vocab:uom#ml', 'l', 7);
