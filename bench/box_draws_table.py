"""Table of bench/run_box_draws.sh: volume-level box Dice per object and model over the seeds'
box draws (mean, min, max), and how many draws fall more than 10 points below v1's.
Usage: box_draws_table.py WORK_DIR OUT.csv SEED... > OUT.md"""
import csv, statistics, sys
from pathlib import Path

work, out_csv, seeds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
# (model, carry) -> class -> [dice per seed]
dice = {}
for s in seeds:
    for r in csv.DictReader(open(work / f"seed-{s}" / "cases.csv")):
        if r["level"] != "volume" or r["prompt"] != "box" or r["clicks"] != "0" or r["oracle"] != "false":
            continue
        dice.setdefault((r["model"], r["carry"]), {}).setdefault(r["class"], []).append(100 * float(r["dice"]))
# Rows: every RadSAM with mask carry (its propagation) and box carry, newest weights first; the base
# model with box carry and its own 3D inference (reference_box).
models = sorted({m for m, _ in dice})
radsams = sorted((m for m in models if m.startswith("radsam")), reverse=True)
rows = [(m, c) for m in radsams for c in ("mask", "box")]
rows += [(m, c) for m in models if not m.startswith("radsam") for c in ("box", "reference_box")]
rows = [k for k in rows if k in dice]
classes = sorted({c for k in rows for c in dice[k]})
with open(out_csv, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["model", "carry", "class"] + [f"seed_{s}" for s in seeds])
    for k in rows:
        for c in classes:
            w.writerow([k[0], k[1], c] + [f"{v:.2f}" for v in dice[k].get(c, [])])
print("# Start-slice losses over box draws (bench/run_box_draws.sh)\n")
print(f"Volume-level box prompt, no clicks, on the validation CT; {len(seeds)} box draws (seeds {', '.join(seeds)}; "
      "`make benchmark` uses seed 1). Dice (%): mean over the draws, and min-max. Rows: each model with a carry; "
      "reference_box is LiteMedSAM's own 3D inference (the reference baseline).\n")
print("| class | " + " | ".join(f"{m} {c}" for m, c in rows) + " |")
print("|---|" + "---|" * len(rows))
for c in classes:
    cells = []
    for k in rows:
        v = dice[k].get(c, [])
        cells.append(f"{statistics.mean(v):.1f} ({min(v):.0f}-{max(v):.0f})" if v else "-")
    print(f"| {c} | " + " | ".join(cells) + " |")
means = {k: statistics.mean(statistics.mean(dice[k][c]) for c in classes if c in dice[k]) for k in rows}
print("| mean | " + " | ".join(f"{means[k]:.1f}" for k in rows) + " |")
v1 = dice.get(("radsam:radsam-v1", "mask"))
for m in radsams:
    if v1 is None or m == "radsam:radsam-v1":
        continue
    other = dice[(m, "mask")]
    print(f"\nDraws where {m.split(':')[-1]} (mask carry) is more than 10 points under v1 (mask carry), per class: " +
          ", ".join(f"{c} {sum(1 for a, b in zip(v1[c], other[c]) if b < a - 10)}/{len(v1[c])}" for c in classes) + ".")
