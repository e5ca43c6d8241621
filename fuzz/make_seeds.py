#!/usr/bin/env python3
"""Seed corpora for the fuzz targets: small valid NIfTI files (plain and gzip, several data types)
and small DICOM CT series (native and RLE), in the input format of each target."""
import gzip
import io
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, generate_uid

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "corpus")
rng = np.random.default_rng(0)

nifti = root / "nifti_reader"
nifti.mkdir(parents=True, exist_ok=True)
for i, dtype in enumerate([np.int16, np.uint8, np.float32, np.int32, np.float64]):
    arr = (rng.normal(0, 300, (6, 5, 4))).astype(dtype)
    img = nib.Nifti1Image(arr, np.diag([0.8, 0.8, 2.5, 1.0]))
    if i == 1:
        img.header.set_slope_inter(2.0, -1024.0)
    raw = img.to_bytes()
    (nifti / f"plain_{i}").write_bytes(b"\x00" + raw)
    (nifti / f"gz_{i}").write_bytes(b"\x01" + gzip.compress(raw))


def ct_slice(series, z, ts, rows=8, cols=6):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series, "1.2.3.4"
    ds.FrameOfReferenceUID = "1.2.3.5"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, z]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 2.5
    pixels = rng.integers(0, 2000, (rows, cols), dtype=np.int16)
    if ts == RLELossless:
        ds.PixelData = pixels.tobytes()
        ds.compress(RLELossless, pixels)
    else:
        ds.PixelData = pixels.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, implicit_vr=ts == ImplicitVRLittleEndian, little_endian=True)
    return buf.getvalue()


dicom = root / "dicom_series"
dicom.mkdir(parents=True, exist_ok=True)
for name, ts in [("explicit", ExplicitVRLittleEndian), ("implicit", ImplicitVRLittleEndian), ("rle", RLELossless)]:
    series = generate_uid()
    files = [ct_slice(series, 2.5 * z, ts) for z in range(3)]
    (dicom / name).write_bytes(b"RADSAMFILE".join(files))

# Job messages: the README's example and variants touching every optional field.
import json
jobs = root / "job_message"
jobs.mkdir(parents=True, exist_ok=True)
example = {
    "schema_version": 1, "job_id": "job-1", "correlation_id": "study-42",
    "volume_uri": "s3://scans/ct/", "series_instance_uid": "1.2.3", "model_version": "radsam", "priority": 5,
    "targets": [{
        "label": "liver", "initial_prompt": {"slice": 106, "box": [20, 30, 80, 75]},
        "boundaries": {"top": 111, "bottom": 69},
        "correction_clicks": [{"slice": 90, "x": 40, "y": 50, "positive": False}],
        "reference_mask_uri": "s3://scans/seg.nii.gz", "reference_label": 5, "carry": "mask",
    }],
}
(jobs / "example").write_text(json.dumps(example))
points = json.loads(json.dumps(example))
points["targets"][0]["initial_prompt"] = {"slice": 100, "points": [{"x": 40, "y": 50, "positive": True}]}
points["targets"][0]["carry"] = "box"
(jobs / "points").write_text(json.dumps(points))
two = json.loads(json.dumps(example))
two["targets"].append(dict(example["targets"][0], label="spleen"))
(jobs / "two_targets").write_text(json.dumps(two))
(jobs / "minimal").write_text('{"schema_version":1,"job_id":"a","volume_uri":"file:///x.nii","targets":[{"label":"t","initial_prompt":{"slice":0,"box":[0,0,1,1]},"boundaries":{"top":0,"bottom":0}}]}')
print(f"seeds written to {root}")
