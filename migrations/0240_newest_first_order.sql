-- A search's default order is newest first: `ORDER BY last_updated DESC NULLS LAST,
-- aggregate_id` (search::push_order). The `(last_updated, aggregate_id)` indexes cannot give
-- that order (read backwards they give `aggregate_id DESC` and NULLS FIRST), so a page of a
-- search matching many rows sorted every match to keep the newest 20 (`name=santos` at
-- 1,000,000 people: 62,000 rows per page). In this order a page reads the index from the
-- newest row and stops when the page is full.
CREATE INDEX individual_view_newest ON individual_view (last_updated DESC NULLS LAST, aggregate_id);
CREATE INDEX group_view_newest ON group_view (last_updated DESC NULLS LAST, aggregate_id);
