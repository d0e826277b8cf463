-- Event polling: what each instance has seen and delivered, so a restart neither
-- loses nor repeats an event.
CREATE TABLE event_cursors (
    connection_id TEXT PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
    enabled_at    TEXT NOT NULL,   -- messages sent before this are not events
    polled_at     TEXT             -- last successful poll
);
CREATE TABLE event_deliveries (
    connection_id   TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    message_sid     TEXT NOT NULL,
    payload         TEXT NOT NULL,   -- the JSON event, as it is POSTed
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT,
    PRIMARY KEY (connection_id, message_sid)
);
CREATE INDEX event_deliveries_due ON event_deliveries(state, next_attempt_at);
