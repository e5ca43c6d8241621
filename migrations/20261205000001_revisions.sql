-- Corrections as revisions (issue #20): a job may name the job it corrects. Each target's results
-- form a chain: revision 1 is a job without a parent, each correction one more than its parent's
-- result for the same label (a target new in the correction starts at 1).
ALTER TABLE jobs ADD COLUMN parent_job_id text;
CREATE INDEX jobs_parent ON jobs (parent_job_id);
ALTER TABLE results ADD COLUMN revision integer NOT NULL DEFAULT 1;
