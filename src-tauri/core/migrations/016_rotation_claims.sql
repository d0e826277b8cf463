-- One run at a time runs a rotation's steps: the run that claimed it (`claim`, one per
-- run) and the open core it belongs to (`claimed_by`, an owner id, see owner.rs), so that
-- a claim of a process that ended is taken over. `cancel_asked_by`: the open core of a
-- `--cancel` waiting for that run, which the run honours while nothing is promoted.
ALTER TABLE rotations ADD COLUMN claimed_by TEXT;
ALTER TABLE rotations ADD COLUMN claim TEXT;
ALTER TABLE rotations ADD COLUMN cancel_asked_by TEXT;
