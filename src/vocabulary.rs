//! Vocabularies, loaded from the database (seeded by migrations).
