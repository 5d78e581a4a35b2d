-- Searching registrants by a property their extension's schema marks searchable
-- (`extension.farmer.farm_size=3`, CONTRACT §8) is a containment test on the extension data,
-- `(state -> 'extension') @> '{"<uri>": {"<property>": <value>}}'`. One GIN index per view
-- serves it for every extension registered now or later (jsonb_path_ops: smaller and faster
-- for @>, the only operator these searches use); registering an extension needs no DDL.
CREATE INDEX individual_view_extension ON individual_view USING gin ((state -> 'extension') jsonb_path_ops);
CREATE INDEX group_view_extension ON group_view USING gin ((state -> 'extension') jsonb_path_ops);
