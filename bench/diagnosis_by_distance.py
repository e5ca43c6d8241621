"""Single-click diagnoses by distance from the prompted slice (issue #17).

Usage: diagnosis_by_distance.py NAME=DIR [NAME=DIR ...]

Reads DIR/click_diagnosis.csv of `radsam bench --diagnose-clicks` runs (the same phantoms, seed and
slices) and prints a Markdown table, mask carry: for each run, click sign and distance of the
clicked slice from the prompted one (0, 1-2, 3 or more), the clicks, the mean change of their
slice's Dice and of the object's (volume) Dice, in points, and the worst object change. Why: a
click on the prompted slice re-propagates both ways, one elsewhere only away from it.
"""
import csv
import sys
from collections import defaultdict

if len(sys.argv) < 2:
    sys.exit(__doc__)


def bucket(distance):
    return "0" if distance == 0 else ("1-2" if distance <= 2 else "3+")


print("| run | click | distance from the prompted slice | clicks | slice Dice change | volume Dice change | worst volume change |")
print("|---|---|---|---|---|---|---|")
for spec in sys.argv[1:]:
    name, folder = spec.split("=", 1)
    groups = defaultdict(list)
    for r in csv.DictReader(open(f"{folder}/click_diagnosis.csv")):
        if r["carry"] != "mask":
            continue
        sign = "positive" if r["positive"] == "true" else "negative"
        slice_change = 100 * (float(r["slice_dice_after"]) - float(r["slice_dice_before"]))
        volume_change = 100 * (float(r["volume_dice_after"]) - float(r["volume_dice_before"]))
        groups[(sign, bucket(int(r["distance"])))].append((slice_change, volume_change))
    for sign in ("positive", "negative"):
        for b in ("0", "1-2", "3+"):
            rows = groups.get((sign, b), [])
            if not rows:
                continue
            n = len(rows)
            print(f"| {name} | {sign} | {b} | {n} | {sum(s for s, _ in rows) / n:+.1f} | "
                  f"{sum(v for _, v in rows) / n:+.2f} | {min(v for _, v in rows):+.1f} |")
