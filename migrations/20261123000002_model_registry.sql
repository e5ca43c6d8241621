-- The model registry of the trainer service (issue #7): which version workers load, where its
-- weights are, what it was trained from and on, and both evaluations of its training round.
ALTER TABLE model_versions
    ADD COLUMN promoted_at timestamptz,
    ADD COLUMN annotations_used integer NOT NULL DEFAULT 0,
    ADD COLUMN decision text;                 -- promoted / not promoted, and why

-- At most one promoted version at a time.
CREATE UNIQUE INDEX model_versions_one_promoted ON model_versions (promoted) WHERE promoted;

-- Training rounds that ended without a version (too few usable annotations, a failed run).
CREATE TABLE training_rounds (
    id            bigserial PRIMARY KEY,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    version       text REFERENCES model_versions(version),
    annotations   integer NOT NULL,
    outcome       text NOT NULL,
    message       text
);
