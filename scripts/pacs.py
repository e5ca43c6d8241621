#!/usr/bin/env python3
"""The test PACS (Orthanc with DICOMweb, scripts/services.sh) from the outside, independently of
RadSAM's own DICOMweb client: for the PACS round-trip test and `make run-pacs`.

  pacs.py store SOURCE_DIR STUDY_UID SERIES_UID COPY_DIR
      Stores a copy of the DICOM series SOURCE_DIR into the PACS under the given UIDs (the sample
      series lacks them: a PACS needs Study, Series and SOP Instance UIDs), through Orthanc's REST
      API; the copy as stored is written to COPY_DIR too. Prints the series' DICOMweb URI.
  pacs.py check-seg STUDY_UID LABELS_NIFTI SOURCE_DIR LABEL[,LABEL...]
      Finds the SEG series of the study with QIDO-RS (exactly one SEG instance expected), downloads
      it with WADO-RS and checks it with scripts/check_dicom_seg.py (highdicom and pydicom): its
      frames must equal the label map's labels 1, 2, ... (the worker's labels.nii.gz) slice by slice.
  pacs.py count-seg STUDY_UID
      Prints the number of SEG instances in the study (QIDO-RS).
  pacs.py delete STUDY_UID
      Deletes the study from the PACS (Orthanc REST; nothing there is not an error).

PACS: RADSAM_PACS_URL (default http://127.0.0.1:8042), user radsam / radsam-pacs (or
RADSAM_DICOMWEB_USER / RADSAM_DICOMWEB_PASSWORD).
"""
import base64
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

PACS = os.environ.get("RADSAM_PACS_URL", "http://127.0.0.1:8042").rstrip("/")
USER = os.environ.get("RADSAM_DICOMWEB_USER", "radsam")
PASSWORD = os.environ.get("RADSAM_DICOMWEB_PASSWORD", "radsam-pacs")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def request(method, path, body=None, headers=None):
    req = urllib.request.Request(PACS + path, data=body, method=method, headers=dict(headers or {}))
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def store(source_dir, study_uid, series_uid, copy_dir):
    import pydicom
    from pydicom.uid import generate_uid

    files = sorted(p for p in Path(source_dir).rglob("*") if p.is_file())
    Path(copy_dir).mkdir(parents=True, exist_ok=True)
    for n, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        # The file meta keeps the instance's UID where the sample emptied the data set's.
        sop = str(ds.get("SOPInstanceUID", "") or ds.file_meta.get("MediaStorageSOPInstanceUID", "")) or generate_uid()
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SOPClassUID = ds.get("SOPClassUID", "") or CT_IMAGE_STORAGE
        ds.PatientID = ds.get("PatientID", "") or "RADSAM-TEST"
        ds.StudyID = ds.get("StudyID", "") or "1"
        copy = Path(copy_dir) / f"{n:04}.dcm"
        ds.save_as(copy, enforce_file_format=True)
        status, _, body = request("POST", "/instances", copy.read_bytes(), {"Content-Type": "application/dicom"})
        if status != 200:
            sys.exit(f"storing {f} into the PACS: HTTP {status} {body[:300]!r}")
    print(f"dicomweb+{PACS}/dicom-web/studies/{study_uid}/series/{series_uid}")


def qido_seg_instances(study_uid):
    status, _, body = request("GET", f"/dicom-web/studies/{study_uid}/series?Modality=SEG", headers={"Accept": "application/dicom+json"})
    if status != 200:
        sys.exit(f"QIDO-RS: HTTP {status} {body[:300]!r}")
    instances = []
    for series in json.loads(body or b"[]"):
        series_uid = series["0020000E"]["Value"][0]
        status, _, body = request("GET", f"/dicom-web/studies/{study_uid}/series/{series_uid}/instances", headers={"Accept": "application/dicom+json"})
        if status != 200:
            sys.exit(f"QIDO-RS instances: HTTP {status} {body[:300]!r}")
        instances += [(series_uid, i["00080018"]["Value"][0]) for i in json.loads(body or b"[]")]
    return instances


def wado_instance(study_uid, series_uid, sop_uid):
    """One instance by WADO-RS, its multipart/related answer split by hand (no PACS library)."""
    status, headers, body = request(
        "GET",
        f"/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    if status != 200:
        sys.exit(f"WADO-RS: HTTP {status} {body[:300]!r}")
    content_type = headers.get("Content-Type", "")
    boundary = [p.split("=", 1)[1].strip('"') for p in content_type.split(";") if p.strip().lower().startswith("boundary=")]
    if not boundary:
        sys.exit(f"WADO-RS: no boundary in {content_type!r}")
    parts = [p for p in body.split(b"--" + boundary[0].encode()) if p not in (b"", b"--\r\n", b"--")]
    parts = [p for p in parts if not p.startswith(b"--")]
    if len(parts) != 1:
        sys.exit(f"WADO-RS: {len(parts)} parts for one instance")
    head, _, data = parts[0].partition(b"\r\n\r\n")
    return data[:-2] if data.endswith(b"\r\n") else data


def check_seg(study_uid, labels_nifti, source_dir, labels):
    import nibabel as nib

    sys.path.insert(0, str(Path(__file__).parent))
    import check_dicom_seg

    instances = qido_seg_instances(study_uid)
    if len(instances) != 1:
        sys.exit(f"QIDO-RS: {len(instances)} SEG instances in study {study_uid}, expected 1: {instances}")
    series_uid, sop_uid = instances[0]
    work = Path(tempfile.mkdtemp(prefix="radsam-pacs-"))
    seg = work / "seg.dcm"
    seg.write_bytes(wado_instance(study_uid, series_uid, sop_uid))
    # The label map's slices are the source series sorted along its normal (as check_dicom_seg
    # sorts it); (i, j, k) = (column, row, slice).
    data = np.asarray(nib.load(labels_nifti).dataobj)
    expected = work / "expected"
    expected.mkdir()
    (expected / "segments.txt").write_text("\n".join(labels))
    source = check_dicom_seg.read_source(source_dir)
    (expected / "sop_instance_uids.txt").write_text("\n".join(i["sop_uid"] for i in source))
    for n in range(1, len(labels) + 1):
        np.save(expected / f"segment_{n}.npy", np.transpose(data == n, (2, 1, 0)).astype(np.uint8))
    print(f"SEG {sop_uid} of series {series_uid}, found by QIDO-RS and downloaded by WADO-RS")
    sys.argv = ["check_dicom_seg.py", str(seg), str(source_dir), str(expected)]
    return check_dicom_seg.main()


def delete(study_uid):
    status, _, body = request("POST", "/tools/lookup", study_uid.encode())
    for item in json.loads(body or b"[]") if status == 200 else []:
        if item.get("Type") == "Study":
            request("DELETE", f"/studies/{item['ID']}")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    command, args = sys.argv[1], sys.argv[2:]
    if command == "store" and len(args) == 4:
        store(*args)
    elif command == "check-seg" and len(args) == 4:
        sys.exit(check_seg(args[0], args[1], args[2], args[3].split(",")))
    elif command == "count-seg" and len(args) == 1:
        print(len(qido_seg_instances(args[0])))
    elif command == "delete" and len(args) == 1:
        delete(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
