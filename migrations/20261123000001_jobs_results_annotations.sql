-- The schema workers write and analysts query. Jobs are keyed by the job id the router chose, so a
-- redelivered job finds its row; results are per target; annotations are what clinicians accepted
-- (the trainer learns from them); model_versions names every model that made a result.

CREATE TABLE model_versions (
    version       text PRIMARY KEY,             -- e.g. radsam@sha256:1a2b3c4d5e6f7a8b
    model         text NOT NULL,                -- architecture / name (radsam, litemedsam, ...)
    sha256        text,                         -- of the weights file
    weights_uri   text,
    parent_version text REFERENCES model_versions(version),
    settings      jsonb,
    evaluation    jsonb,
    promoted      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
    job_id          text PRIMARY KEY,
    correlation_id  text,                        -- the study, as the router knows it
    volume_uri      text,
    requested_model text,
    priority        smallint NOT NULL DEFAULT 0,
    status          text NOT NULL CHECK (status IN ('running', 'queued', 'succeeded', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,  -- deliveries that reached processing
    requeues        integer NOT NULL DEFAULT 0,  -- of which returned to the queue on purpose (transient failure, shutdown)
    worker          text,                        -- host:pid of the last worker that took it
    payload         jsonb,                       -- the job as received (null if it was not JSON)
    error_code      text,
    error_message   text,
    model_version   text REFERENCES model_versions(version),
    received_at     timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    queue_lag_s     double precision,            -- publish to first byte of processing
    fetch_s         double precision,
    decode_s        double precision,
    encode_s        double precision,
    propagate_s     double precision,
    upload_s        double precision,
    commit_s        double precision,
    total_s         double precision,
    result_event    jsonb                        -- what was published on the results exchange
);
CREATE INDEX jobs_status ON jobs (status);
CREATE INDEX jobs_correlation ON jobs (correlation_id);

CREATE TABLE results (
    job_id         text NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE,
    label          text NOT NULL,
    mask_uri       text NOT NULL,                -- NIfTI mask of this target
    labels_uri     text NOT NULL,                -- all targets of the job in one label map
    seg_uri        text,                         -- DICOM SEG (DICOM input only)
    voxels         bigint NOT NULL,
    volume_ml      double precision NOT NULL,
    reference_ml   double precision,
    dice           double precision,             -- against the reference mask, when one was given
    carry          text NOT NULL,
    initial_slice  integer NOT NULL,
    first_slice    integer NOT NULL,
    last_slice     integer NOT NULL,
    clicks_applied integer NOT NULL,
    model_version  text NOT NULL REFERENCES model_versions(version),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, label)
);

-- Messages that were not a job at all (not JSON, no job id): kept so nothing vanishes unseen.
CREATE TABLE rejected_messages (
    id            bigserial PRIMARY KEY,
    message_id    text,
    body          text NOT NULL,
    error_code    text NOT NULL,
    error_message text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE annotations (
    id              bigserial PRIMARY KEY,
    job_id          text NOT NULL,
    label           text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('accepted', 'edited')),
    mask_uri        text NOT NULL,               -- the result's mask, or the clinician's edit
    accepted_by     text NOT NULL,
    accepted_at     timestamptz NOT NULL DEFAULT now(),
    note            text,
    used_by_version text REFERENCES model_versions(version),  -- set by the trainer (issue #7)
    FOREIGN KEY (job_id, label) REFERENCES results(job_id, label),
    UNIQUE (job_id, label, accepted_by)
);

-- What an analyst asks first: the organ volumes of each study...
CREATE VIEW organ_volumes AS
SELECT j.correlation_id AS study, r.label AS organ, r.volume_ml, r.voxels, r.dice, r.model_version,
       r.job_id, r.mask_uri, j.finished_at
FROM results r JOIN jobs j USING (job_id)
WHERE j.status = 'succeeded';

-- ...and how good each model version is, per organ, where a reference was given.
CREATE VIEW dice_by_model AS
SELECT r.model_version, r.label AS organ, count(*) AS n, avg(r.dice) AS mean_dice,
       min(r.dice) AS min_dice, max(r.dice) AS max_dice,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.dice) AS median_dice
FROM results r JOIN jobs j USING (job_id)
WHERE j.status = 'succeeded' AND r.dice IS NOT NULL
GROUP BY r.model_version, r.label;

-- Throughput and where the time goes, per day and outcome.
CREATE VIEW job_stats AS
SELECT date_trunc('day', finished_at) AS day, status, error_code, count(*) AS jobs,
       avg(total_s) AS mean_total_s, avg(fetch_s) AS mean_fetch_s, avg(decode_s) AS mean_decode_s,
       avg(encode_s) AS mean_encode_s, avg(propagate_s) AS mean_propagate_s,
       avg(upload_s) AS mean_upload_s, avg(commit_s) AS mean_commit_s, avg(queue_lag_s) AS mean_queue_lag_s
FROM jobs WHERE status IN ('succeeded', 'failed')
GROUP BY 1, 2, 3;
