"""A long synthetic object for bench/run_service_bench.sh (issue #20): a 512 x 512 x 160 CT-like
volume (0.8 x 0.8 x 2.5 mm) holding a contrast-filled tube, an aorta-length object of 100 slices
(30..129), inside a soft-tissue body, with noise. A job prompting its middle slice with boundaries
0..159 has a propagation that must stop where the tube ends: what lazy encoding is for.
Usage: make_long_phantom.py OUT.nii.gz"""
import sys
import numpy as np
import nibabel as nib

rng = np.random.default_rng(20)
nx, ny, nz = 512, 512, 160
i, j = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
body = ((i - 256) / 220.0) ** 2 + ((j - 256) / 170.0) ** 2 <= 1.0
tube = (i - 256) ** 2 + (j - 256) ** 2 <= 14 ** 2
vol = np.full((nx, ny, nz), -1000.0, dtype=np.float32)
for k in range(nz):
    plane = np.where(body, 40.0, -1000.0)
    if 30 <= k <= 129:
        plane = np.where(tube, 250.0, plane)
    vol[:, :, k] = plane + rng.normal(0.0, 15.0, (nx, ny))
affine = np.diag([0.8, 0.8, 2.5, 1.0])
img = nib.Nifti1Image(vol.astype(np.int16), affine)
img.header.set_xyzt_units("mm")
nib.save(img, sys.argv[1])
