-- Searches over 1,000,000 individuals (issue 10: "p99 < 50 ms for name, identifier and
-- birth-date searches") read most of what they filter and sort on from indexes rather than
-- from the rows themselves, which are wide (the whole record, ~300 bytes) and scattered:
--   * a count of a common name walks the newest rows (`view::walk_statement`) until it finds
--     its bound: for "santos" (one in 16) 16,300 rows read for 1,020 matches, 13 ms; the same
--     walk over this index alone, which carries the name, 1.7 ms (no row is read);
--   * a page sorts what its filters select to keep 20 (`view::page_statement`): for a month of
--     birth dates, 1,240 rows fetched to be sorted by `last_updated`, 2.4 ms when they are in
--     memory and 51 ms when not; sorting this index's entries and reading only the 20 rows of
--     the page, 0.8 ms.
-- Same names and keys as before (migration 0004), so every plan that used them still does; only
-- what they carry changes. The gender is carried for the same reason as the name: a count of
-- one gender among the newest rows reads no row either.
DROP INDEX individual_view_last_updated;
CREATE INDEX individual_view_last_updated ON individual_view (last_updated, aggregate_id)
    INCLUDE (name_search, birth_date, gender_code);
DROP INDEX individual_view_birth_date;
CREATE INDEX individual_view_birth_date ON individual_view (birth_date, aggregate_id)
    INCLUDE (last_updated);
