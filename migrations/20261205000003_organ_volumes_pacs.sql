-- The organ volumes view names where each result's SEG went in the PACS (issue #21), so that a
-- dashboard or `radsam results` can link to it. Postgres lets a view gain columns at its end.
CREATE OR REPLACE VIEW organ_volumes AS
SELECT j.correlation_id AS study, r.label AS organ, r.volume_ml, r.voxels, r.dice, r.model_version,
       r.job_id, r.mask_uri, j.finished_at, r.pacs_seg_uri
FROM results r JOIN jobs j USING (job_id)
WHERE j.status = 'succeeded';
