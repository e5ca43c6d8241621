#!/usr/bin/env python3
"""The validation table of issue #5 from two `radsam bench-propagation` runs (LiteMedSAM as shipped,
the project's RadSAM): means, the paper's claims checked, and per-organ rows.

Usage: radsam_table.py LITE_MEDSAM.json RADSAM.json OUT.md
"""
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

runs = [json.loads(Path(p).read_text()) for p in sys.argv[1:3]]
label = {"lite_medsam": "LiteMedSAM as shipped", "radsam": "RadSAM (this project)"}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
cols = [("volume_level", "box/mask carry"), ("volume_level", "box/box carry"), ("volume_level", "point/mask carry"),
        ("volume_level", "point/box carry"), ("slice_level", "box"), ("slice_level", "point"),
        ("clicks", "5"), ("clicks", "10"), ("clicks", "20")]
heads = ["volume box, mask carry", "volume box, box carry", "volume point, mask carry", "volume point, box carry",
         "slice-level box", "slice-level point", "5 clicks", "10 clicks", "20 clicks"]


def value(o, c):
    return 100 * o[c[0]][c[1]]


def means(r):
    return [sum(value(o, c) for o in r["objects"]) / len(r["objects"]) for c in cols]


m = {r["model"]: means(r) for r in runs}
lines = [
    "# RadSAM vs LiteMedSAM on the validation CT",
    "",
    f"Machine: {cpu}, {cores} cores, CPU, {runs[0]['threads']} threads; both models in the same run. Date: {when}.",
    "Command: `make bench-radsam` (bench/run_radsam_validation.sh). Data: TotalSegmentator's example DICOM",
    "scan (20 slices of 512x512, 2 mm; the validation split, never trained on) with its labels; 9 abdominal",
    f"organs. One prompt on the organ's largest slice plus its true first and last slice; mask choice {runs[0]['mask_choice']};",
    "clicks simulated uniformly in the 3D error region (seed 1) from the box prompt, with box carry for",
    "LiteMedSAM (its better carry) and mask carry for RadSAM. The RadSAM weights: models/radsam.safetensors",
    "(bench/train_radsam.sh; log and curves in bench/results/train_radsam_*).",
    "",
    "Mean Dice (%) over the 9 organs:",
    "",
    "| model | " + " | ".join(heads) + " |",
    "|---|" + "---|" * len(heads),
]
for r in runs:
    lines.append(f"| {label.get(r['model'], r['model'])} | " + " | ".join(f"{v:.1f}" for v in m[r["model"]]) + " |")

rad, lite = m.get("radsam"), m.get("lite_medsam")
if rad and lite:
    best_box = max(rad[1], lite[1], rad[3], lite[3])
    checks = [
        ("RadSAM mask carry beats the best box carry by >= 10 points", rad[0] - best_box, rad[0] - best_box >= 10,
         f"{rad[0]:.1f} vs {best_box:.1f}"),
        ("RadSAM mask carry within 5 points of slice-level box prompting", rad[0] - rad[4], rad[4] - rad[0] <= 5,
         f"{rad[0]:.1f} vs {rad[4]:.1f} (RadSAM slice-level box; LiteMedSAM's: {lite[4]:.1f})"),
        ("RadSAM Dice rises with clicks (0 -> 5 -> 10 -> 20)", rad[8] - rad[0], rad[0] <= rad[6] <= rad[7] <= rad[8],
         " -> ".join(f"{v:.1f}" for v in (rad[0], rad[6], rad[7], rad[8]))),
    ]
    lines += ["", "The paper's claims, checked:", "", "| claim | difference (points) | met | numbers |", "|---|---|---|---|"]
    for name, diff, ok, nums in checks:
        lines.append(f"| {name} | {diff:+.1f} | {'yes' if ok else '**no**'} | {nums} |")
    # How much room this scan leaves for the first claim. A box on every slice (slice-level box) is
    # what box carry degrades from: the gap between the two is box carry's drift. In the paper
    # (AMOS, Tables 2 and 5) RadSAM's mask carry stays under its slice-level box too (84.99 vs
    # 91.08) while its box carry drifts 24.5 points (66.56); the 10-point claim lives in that drift.
    paper = {"slice box": 91.08, "mask carry": 84.99, "box carry": 66.56}
    lengths = sorted(hi - lo + 1 for lo, hi in (o["boundaries"] for o in runs[0]["objects"]))
    need = best_box + 10
    lines += [
        "",
        "Room for the first claim on this scan: box carry's drift (slice-level box minus box carry, volume box",
        f"prompt) is {rad[4] - rad[1]:.1f} points for RadSAM and {lite[4] - lite[1]:.1f} for LiteMedSAM here, against",
        f"{paper['slice box'] - paper['box carry']:.1f} for the paper's RadSAM on AMOS (slice box {paper['slice box']}, box carry {paper['box carry']},",
        f"mask carry {paper['mask carry']}: mask carry {paper['slice box'] - paper['mask carry']:.1f} under the slice-level box). The organs here",
        f"span {lengths[0]}..{lengths[-1]} slices (median {lengths[len(lengths) // 2]}), so a carry takes at most {lengths[-1] - 1} steps. Meeting the claim here",
        f"takes mask carry {need:.1f}: {need - rad[4]:+.1f} points against a true box on every slice.",
    ]

for r in runs:
    lines += ["", f"## {label.get(r['model'], r['model'])}: per organ", "",
              "| organ | slices | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
    for o in r["objects"]:
        lo, hi = o["boundaries"]
        lines.append(f"| {o['name']} | {hi - lo + 1} | " + " | ".join(f"{value(o, c):.1f}" for c in cols) + " |")
Path(sys.argv[3]).write_text("\n".join(lines) + "\n")
