#!/usr/bin/env python3
"""Checks a DICOM SEG written by RadSAM with independent readers (highdicom, pydicom).

Usage: check_dicom_seg.py SEG_FILE SOURCE_DICOM_DIR EXPECTED_DIR

EXPECTED_DIR holds
  segments.txt            segment labels, one a line, in segment-number order (1, 2, ...)
  sop_instance_uids.txt   the source SOP Instance UIDs, one a line, in the masks' slice order
  segment_<n>.npy         the mask of segment n: uint8, (slices, rows, columns), non-zero = inside

The slice order is checked against this script's own sort of the source files (along the slice
normal), so a wrong slice-to-instance mapping in the writer or the reader is caught, not copied.
Prints a summary; exits 1 with every mismatch listed.
"""
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
    return ok


def meta_fallback(ds, keyword, meta_keyword):
    """The attribute, or the file meta's copy when an anonymiser emptied it."""
    return str(ds.get(keyword, "") or ds.file_meta.get(meta_keyword, ""))


def read_source(folder):
    """Source instances sorted along the slice normal, as dicts of what the SEG must reference."""
    instances = []
    for f in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != "DICOMDIR"):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        orientation = np.array(ds.ImageOrientationPatient, dtype=float)
        position = np.array(ds.ImagePositionPatient, dtype=float)
        instances.append({
            "sop_uid": meta_fallback(ds, "SOPInstanceUID", "MediaStorageSOPInstanceUID"),
            "sop_class": meta_fallback(ds, "SOPClassUID", "MediaStorageSOPClassUID"),
            "series_uid": str(ds.get("SeriesInstanceUID", "")),
            "study_uid": str(ds.get("StudyInstanceUID", "")),
            "frame_of_reference": str(ds.get("FrameOfReferenceUID", "")),
            "position": position,
            "depth": float(np.cross(orientation[:3], orientation[3:]) @ position),
        })
    return sorted(instances, key=lambda i: i["depth"])


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    seg_path, source_dir, expected_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    labels = (expected_dir / "segments.txt").read_text().splitlines()
    uids = (expected_dir / "sop_instance_uids.txt").read_text().splitlines()
    expected = [np.load(expected_dir / f"segment_{n}.npy") != 0 for n in range(1, len(labels) + 1)]
    source = read_source(source_dir)
    source_uids = [i["sop_uid"] for i in source]
    check(uids == source_uids, "the masks' slice order is not the source series sorted along the slice normal")
    for label, mask in zip(labels, expected):
        check(mask.shape[0] == len(source), f"expected mask {label!r} has {mask.shape[0]} slices, the source {len(source)}")
    if failures:
        return report()

    # highdicom: structure, references, and pixels per source instance.
    seg = hd.seg.segread(seg_path)
    check(seg.SOPClassUID == SEG_STORAGE, f"SOP class {seg.SOPClassUID}, not Segmentation Storage")
    check(seg.Modality == "SEG", f"modality {seg.Modality}")
    check(seg.SegmentationType == "BINARY", f"segmentation type {seg.SegmentationType}")
    numbers = list(seg.segment_numbers)
    check(numbers == list(range(1, len(labels) + 1)), f"segment numbers {numbers}, expected 1..{len(labels)}")
    seg_labels = [seg.get_segment_description(n).segment_label for n in numbers]
    check(seg_labels == labels, f"segment labels {seg_labels}, expected {labels}")
    check(seg.FrameOfReferenceUID == source[0]["frame_of_reference"], "FrameOfReferenceUID differs from the source's")
    if source[0]["study_uid"]:
        check(seg.StudyInstanceUID == source[0]["study_uid"], "StudyInstanceUID differs from the source's")
    check(seg.SeriesInstanceUID != source[0]["series_uid"], "the SEG reuses the source's SeriesInstanceUID")
    ref_series = seg.ReferencedSeriesSequence
    check(len(ref_series) == 1 and ref_series[0].SeriesInstanceUID == source[0]["series_uid"], "ReferencedSeriesSequence does not name the source series (alone)")
    referenced = {(r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID) for s in ref_series for r in s.ReferencedInstanceSequence}
    check(referenced == {(i["sop_class"], i["sop_uid"]) for i in source}, "ReferencedInstanceSequence is not exactly the source instances")
    frame_sources = {sop for _, _, sop in seg.get_source_image_uids()}
    check(frame_sources <= set(source_uids), "frames reference instances outside the source series")
    # Slices where no segment has a frame are read as empty: that is the writer's rule.
    pixels = seg.get_pixels_by_source_instance(source_uids, assert_missing_frames_are_empty=True)
    for s, (label, mask) in enumerate(zip(labels, expected)):
        got = pixels[..., s] != 0
        check(got.shape == mask.shape, f"segment {label!r}: highdicom gives {got.shape}, expected {mask.shape}")
        if got.shape == mask.shape:
            diff = int((got != mask).sum())
            check(diff == 0, f"segment {label!r}: {diff} voxels differ from the expected mask")
        print(f"segment {s + 1} {label!r}: {int(got.sum())} voxels (expected {int(mask.sum())})")

    # pydicom: encoding, and every frame against its segment, source slice and position.
    ds = pydicom.dcmread(seg_path)
    check(ds.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN, f"transfer syntax {ds.file_meta.TransferSyntaxUID}")
    frames = int(ds.NumberOfFrames)
    rows, cols = int(ds.Rows), int(ds.Columns)
    bits = frames * rows * cols
    check(len(ds.PixelData) == (bits + 7) // 8 + ((bits + 7) // 8) % 2, f"PixelData has {len(ds.PixelData)} bytes for {frames} frames of {rows}x{cols} at 1 bit")
    check(len(ds.PerFrameFunctionalGroupsSequence) == frames, "PerFrameFunctionalGroupsSequence length differs from NumberOfFrames")
    array = ds.pixel_array.reshape(frames, rows, cols)
    slice_of = {uid: k for k, uid in enumerate(source_uids)}
    frames_of = {n: [] for n in numbers}
    for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        k = slice_of.get(uid)
        if not check(number in frames_of and k is not None, f"frame {f + 1}: segment {number} or source {uid} unknown"):
            continue
        frames_of[number].append(k)
        check(list(item.FrameContentSequence[0].DimensionIndexValues) == [number, k + 1], f"frame {f + 1}: DimensionIndexValues {item.FrameContentSequence[0].DimensionIndexValues}, expected {[number, k + 1]}")
        position = np.array(item.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        check(np.allclose(position, source[k]["position"], atol=1e-4), f"frame {f + 1}: ImagePositionPatient {position} is not that of its source slice {source[k]['position']}")
        check(np.array_equal(array[f] != 0, expected[number - 1][k]), f"frame {f + 1} (segment {number}, slice {k}) differs from the expected mask")
    for n, mask in zip(numbers, expected):
        nonempty = [k for k in range(mask.shape[0]) if mask[k].any()]
        check(frames_of[n] == (nonempty or [0]), f"segment {n}: frames on slices {frames_of[n]}, expected {nonempty or [0]} (non-empty slices, or one empty frame on the first)")
    print(f"{frames} frames of {rows}x{cols}, {len(numbers)} segments, {len(referenced)} referenced source instances")
    return report()


def report():
    if failures:
        print("DICOM SEG check FAILED:", *failures, sep="\n  ", file=sys.stderr)
        return 1
    print("DICOM SEG check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
