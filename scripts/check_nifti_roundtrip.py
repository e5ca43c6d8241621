#!/usr/bin/env python3
"""Usage: check_nifti_roundtrip.py ORIGINAL WRITTEN
Checks with nibabel (an independent reader) that WRITTEN holds the same voxels, bit for bit, in the
same on-disk data type, with the same affine and grid as ORIGINAL. Exits non-zero on a mismatch."""
import sys

import nibabel as nib
import numpy as np

a, b = nib.load(sys.argv[1]), nib.load(sys.argv[2])
problems = []
if a.shape != b.shape:
    problems.append(f"shape {a.shape} != {b.shape}")
if a.get_data_dtype() != b.get_data_dtype():
    problems.append(f"dtype {a.get_data_dtype()} != {b.get_data_dtype()}")
if not np.array_equal(a.affine, b.affine):
    problems.append(f"affine differs:\n{a.affine}\n{b.affine}")
da, db = np.asarray(a.dataobj), np.asarray(b.dataobj)
if da.tobytes() != db.tobytes():
    problems.append(f"voxels differ at {np.count_nonzero(da != db)} places")
if problems:
    sys.exit("NIfTI round trip FAILED: " + "; ".join(problems))
print(f"NIfTI round trip OK: {a.shape} {a.get_data_dtype()}, voxels and affine identical")
