-- `_sort=given` (and `-given`) is a search parameter like the others: it gets its own index, so a
-- sorted page never scans and sorts the whole view.
CREATE INDEX individual_view_given ON individual_view (given_name, aggregate_id);
