-- A client may be limited to some fields of a resource (`resource:field`; none listed for a
-- resource = all of its fields), on top of whatever the data subject's consent allows.
ALTER TABLE api_clients ADD COLUMN field_filter text[] NOT NULL DEFAULT '{}';
