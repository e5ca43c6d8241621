-- Invalid messages never touch the jobs table (a job id's row belongs to its first valid claim):
-- the ids such a message seems to carry are kept beside it, so a caller can still find out what
-- became of the job it sent (`radsam results` reads them).
ALTER TABLE rejected_messages
    ADD COLUMN job_id         text,
    ADD COLUMN correlation_id text;
CREATE INDEX rejected_messages_job ON rejected_messages (job_id);
