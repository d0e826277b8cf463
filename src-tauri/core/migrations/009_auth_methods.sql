-- Which of its connector's auth methods (`auth_methods[].key` in connectors/<key>.json) a
-- connection uses. Every row written before this was Twilio with its Auth Token; new rows
-- always name their method, so the default only serves the rows that were already here.
ALTER TABLE connections ADD COLUMN auth_method TEXT NOT NULL DEFAULT 'auth_token';
