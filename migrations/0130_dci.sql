-- DCI Social Registry (CONTRACT §9): the transactions senders ask about (txn status), the outbox
-- their callbacks are delivered from, and how DCI identifier types name this registry's systems.

-- One asynchronous request (search, subscribe, unsubscribe, txn-status) as the ACK promised it:
-- who asked (the API client and the scopes its token had), what, and where the answer goes.
CREATE TABLE dci_transactions (
    correlation_id text PRIMARY KEY,
    transaction_id text NOT NULL,
    client_id text NOT NULL,
    scopes text[] NOT NULL,
    sender_id text NOT NULL,
    action text NOT NULL,
    request jsonb NOT NULL,
    -- rcvd | pdng | succ | rjct (the DCI request status)
    status text NOT NULL DEFAULT 'pdng',
    -- The message delivered (or answered), which txn status reports.
    response jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dci_transactions_by_sender ON dci_transactions (client_id, transaction_id);

-- Callbacks to deliver. A row whose `envelope` is NULL is a job: the worker computes the
-- answer (under the sender's principal), stores it, then delivers it; retries send the stored
-- envelope unchanged. A worker claims a row by moving `next_attempt_at` past a lease, in a
-- statement that skips rows another worker holds, so one process delivers each message.
CREATE TABLE dci_outbox (
    id bigserial PRIMARY KEY,
    correlation_id text REFERENCES dci_transactions ON DELETE CASCADE,
    client_id text NOT NULL,
    uri text NOT NULL,
    action text NOT NULL,
    -- Rows with the same key are delivered one at a time, in id order (a subscription's
    -- notifications); NULL for rows that need no order.
    ordering_key text,
    envelope jsonb,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dci_outbox_due ON dci_outbox (next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX dci_outbox_ordered ON dci_outbox (ordering_key, id) WHERE delivered_at IS NULL;

-- DCI identifier types (`UIN`, `BRN`, …) and the identifier systems they name here; the
-- operator edits the rows. A system may have several DCI names; the first by `rank` is the one
-- records are shown with.
CREATE TABLE dci_identifier_types (
    dci_type text PRIMARY KEY,
    system text NOT NULL,
    rank integer NOT NULL DEFAULT 100
);
INSERT INTO dci_identifier_types (dci_type, system, rank) VALUES
    ('UIN', 'urn:openspp:vocab:id-type#national_id', 1),
    ('NIN', 'urn:openspp:vocab:id-type#national_id', 2),
    ('BRN', 'urn:openspp:vocab:id-type#birth_certificate', 1),
    ('PASSPORT', 'urn:openspp:vocab:id-type#passport', 1),
    ('TAX_ID', 'urn:openspp:vocab:id-type#tax_id', 1),
    ('HOUSEHOLD_ID', 'urn:openspp:vocab:id-type#household_id', 1);

-- Senders' signing keys (`openspp dci sender add`): a sender id belongs to one API client, and
-- a signature naming `{sender_id}|{key_id}` is verified with that key.
CREATE TABLE dci_sender_keys (
    sender_id text NOT NULL,
    key_id text NOT NULL,
    client_id text NOT NULL,
    public_key bytea NOT NULL CHECK (length(public_key) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sender_id, key_id)
);

-- Subscriptions (`subscribe`): a filter over one kind of registry event, the sender's
-- principal to evaluate it under, where to `notify`, and how far along the event feed
-- (`(tx_id, global_position)`, the order every follower reads) it has been followed.
CREATE TABLE dci_subscriptions (
    code text PRIMARY KEY,
    correlation_id text NOT NULL,
    transaction_id text NOT NULL,
    client_id text NOT NULL,
    scopes text[] NOT NULL,
    sender_id text NOT NULL,
    notify_uri text NOT NULL,
    -- REGISTER | UPDATE | NewHouseHoldMember
    event_type text NOT NULL,
    -- The filter as search criteria: {query_type, query, reg_record_type}.
    criteria jsonb NOT NULL,
    locale text,
    feed_tx bigint NOT NULL,
    feed_position bigint NOT NULL,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz
);
CREATE INDEX dci_subscriptions_active ON dci_subscriptions (code) WHERE active;
