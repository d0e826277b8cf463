-- Twilio cannot say whether a secondary Auth Token exists, only delete one: a rotation
-- counts the secondaries it created, and records when its first DELETE removed one it
-- did not make (someone may have been rotating by hand), to say so afterwards.
ALTER TABLE rotations ADD COLUMN secondaries_created INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rotations ADD COLUMN revoked_foreign_secondary INTEGER NOT NULL DEFAULT 0 CHECK (revoked_foreign_secondary IN (0, 1));
