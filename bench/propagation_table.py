#!/usr/bin/env python3
"""Renders bench/results/propagation_bench.json as bench/results/propagation_bench.md."""
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

r = json.loads(Path(sys.argv[1]).read_text())
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
objs = r["objects"]
cols = ["box/mask carry", "box/box carry", "point/mask carry", "point/box carry"]
lines = [
    f"# Propagation benchmark: {r['model']} as shipped (the MedSAM baseline)",
    "",
    f"Machine: {cpu}, {cores} cores, CPU, {r['threads']} threads. Date: {when}. Command: `make bench-propagation`",
    f"(bench/run_propagation_bench.sh). Data: the sample CT example_ct.nii.gz (TotalSegmentator's labels,",
    f"silver standard; the training split). Mask choice: {r['mask_choice']}. Clicks: simulated uniformly in the",
    f"3D error region (seed {r['seed']}), from the box prompt with {r['click_carry']} carry.",
    "",
    "Dice (%) from one prompt on the organ's largest slice with its true boundaries:",
    "",
    "| organ | slices | " + " | ".join(f"volume-level {c}" for c in cols) + " | slice-level box | slice-level point | 5 clicks | 10 clicks | 20 clicks |",
    "|---|---|" + "---|" * (len(cols) + 5),
]
mean = lambda xs: sum(xs) / len(xs)
rows = []
for o in objs:
    vals = [o["volume_level"][c] for c in cols] + [o["slice_level"]["box"], o["slice_level"]["point"]] + [o["clicks"][str(n)] for n in (5, 10, 20)]
    rows.append(vals)
    lo, hi = o["boundaries"]
    lines.append(f"| {o['name']} | {hi - lo + 1} | " + " | ".join(f"{100 * v:.1f}" for v in vals) + " |")
lines.append("| **mean** | | " + " | ".join(f"**{100 * mean([row[i] for row in rows]):.1f}**" for i in range(len(rows[0]))) + " |")
t = r["timing"]
lines += ["", f"## Timing: box-carry propagation over a {t['slices']}-slice object (label {t['object_label']}, colon)", ""]
lines += ["| implementation | encode s | propagate s | total s |", "|---|---|---|---|"]
lines.append(f"| rust-tch | {t['encode_seconds']:.1f} | {t['propagate_seconds']:.2f} | {t['encode_seconds'] + t['propagate_seconds']:.1f} |")
ref = t.get("reference")
if ref:
    run = ref["run"]
    lines.append(f"| pytorch-reference | {run['encode_seconds']:.1f} | {run['propagate_seconds']:.2f} | {run['encode_seconds'] + run['propagate_seconds']:.1f} |")
    total_ratio = (run["encode_seconds"] + run["propagate_seconds"]) / (t["encode_seconds"] + t["propagate_seconds"])
    lines += ["", f"Speed-up of Rust over the reference: {total_ratio:.2f}x in total, "
              f"{run['propagate_seconds'] / t['propagate_seconds']:.2f}x on the propagation alone. "
              f"Dice between the two implementations' masks: {100 * ref['dice_rust_vs_reference']:.2f}%."]
lines += ["", "The shipped LiteMedSAM was trained with box prompts only: point prompts and mask carry fail with it,",
          "which is the paper's motivation for RadSAM training (issue #5 adds the project's RadSAM weights to this table)."]
Path(sys.argv[1]).with_suffix(".md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
