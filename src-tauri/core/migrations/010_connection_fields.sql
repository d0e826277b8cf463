-- Connections of any connector: the common columns stay, the connector's non-secret
-- values move to `fields` and what its service said about the account to `details`
-- (JSON objects, keyed by the field names of connectors/<key>.json). Every row so far is
-- Twilio's; an account-level connection (phone "") simply has no phone_number, and
-- json_patch leaves out the details Twilio did not give (NULL columns).
ALTER TABLE connections ADD COLUMN fields TEXT NOT NULL DEFAULT '{}';
ALTER TABLE connections ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
UPDATE connections SET
    fields = json_patch(
        json_object('account_sid', account_sid, 'test_credentials', json(CASE test_credentials WHEN 1 THEN 'true' ELSE 'false' END)),
        json_object('phone_number', nullif(phone_number, ''))),
    details = json_patch('{}', json_object('account_name', account_friendly_name, 'account_type', account_type));
DROP INDEX connections_account;
ALTER TABLE connections DROP COLUMN account_sid;
ALTER TABLE connections DROP COLUMN phone_number;
ALTER TABLE connections DROP COLUMN test_credentials;
ALTER TABLE connections DROP COLUMN account_friendly_name;
ALTER TABLE connections DROP COLUMN account_type;
