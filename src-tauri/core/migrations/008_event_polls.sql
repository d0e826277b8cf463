-- What the last poll of an instance's events found wrong, so a failing poll shows in
-- GET /instances/{id} rather than only in a log.
ALTER TABLE event_cursors ADD COLUMN last_error_code TEXT;
ALTER TABLE event_cursors ADD COLUMN last_error_message TEXT;
ALTER TABLE event_cursors ADD COLUMN last_attempt_at TEXT;
