-- forge schema, version 16: an email may carry an HTML part beside its
-- text (issue 16, message templates). Like `body` it holds the code, so it
-- is erased together with it.
ALTER TABLE outbox ADD COLUMN html TEXT;
