-- Subjects a request asked for and did not get (unknown, or not visible to the caller): a
-- `$bulk/export` names every identifier it was asked for, found or not, and marks those not
-- found here (each is also in `subjects`, so a search by subject finds the attempt).
ALTER TABLE access_log ADD COLUMN subjects_not_found text[] NOT NULL DEFAULT '{}';
