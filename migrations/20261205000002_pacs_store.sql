-- DICOM SEG stored back into the PACS (issue #21): where the job's SEG went (its WADO-RS URL) and
-- the PACS's warning when it stored it with one. NULL: not stored in a PACS.
ALTER TABLE results ADD COLUMN pacs_seg_uri text;
ALTER TABLE results ADD COLUMN pacs_store_warning text;
