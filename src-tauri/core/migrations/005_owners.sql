-- Which process is writing or deleting an unfinished ('pending' / 'deleting') row: the
-- id of its owner lock (owner.rs). Repair only finishes rows whose owner is gone, so a
-- process never undoes work another live process is in the middle of. NULL on rows
-- written before this column existed: their owner is gone too.
ALTER TABLE connections ADD COLUMN owner TEXT;
ALTER TABLE assets ADD COLUMN owner TEXT;
CREATE INDEX connections_unfinished ON connections(owner) WHERE lifecycle != 'active';
CREATE INDEX assets_unfinished ON assets(owner) WHERE lifecycle != 'active';
