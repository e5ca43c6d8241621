#!/usr/bin/env bash
# The GPU check (issue #20), run from its bundle (`make gpu-bundle`; see scripts/gpu_bundle.sh):
#   1. the main job's segmentation (liver and spleen of the validation scan, RadSAM, mask carry, one
#      click; `radsam segment`) in f32 and in mixed precision (--half: f16 autocast);
#   2. the encoder alone at batch 1, 8 and 32 (`radsam bench-model`), f32 and f16: slices per second;
#   3. a 100-slice propagation (`radsam bench-propagation`: the colon of the sample CT, box carry);
# then one JSON, $OUT/gpu_check.json, with the device named. The embedding cache is off: every
# slice is encoded. DEVICE (default cuda) and QUICK=1 (small batches, a 12-slice propagation: the
# CPU test) change what runs; the JSON says what did.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$here/out}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export RADSAM_CACHE=$here RADSAM_MODELS=$here/models RADSAM_CACHE_EMBEDDINGS=off
# The host's libtorch (../shared/gpu.md), unless the caller set the path.
if [ -z "${LD_LIBRARY_PATH:-}" ] && command -v python3 > /dev/null; then
  torch_lib=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null || true)
  [ -n "$torch_lib" ] && export LD_LIBRARY_PATH=$torch_lib
fi
radsam=$here/bin/radsam
data=$here/data/totalsegmentator
if [ "${QUICK:-0}" = 1 ]; then batches="1 2"; repeats=1; timing=20,100,111; else batches="1 8 32"; repeats=3; timing=20,12,111; fi

cat > "$OUT/job.json" <<JOB
{"schema_version": 1, "job_id": "gpu-check", "volume_uri": "$data/example_ct_dicom",
 "targets": [
  {"label": "liver", "initial_prompt": {"slice": 16, "box": [107, 199, 278, 374]}, "boundaries": {"top": 19, "bottom": 0},
   "correction_clicks": [{"slice": 3, "x": 200, "y": 300, "positive": true}],
   "reference_mask_uri": "$data/example_seg_dicom.nii.gz", "reference_label": 5},
  {"label": "spleen", "initial_prompt": {"slice": 12, "box": [291, 245, 392, 377]}, "boundaries": {"top": 19, "bottom": 0},
   "reference_mask_uri": "$data/example_seg_dicom.nii.gz", "reference_label": 1}]}
JOB
for precision in f32 f16; do
  half=(); [ "$precision" = f16 ] && half=(--half)
  rm -rf "$OUT/segment_$precision"
  start=$(date +%s.%N)
  "$radsam" segment --device "$DEVICE" "${half[@]}" --job "$OUT/job.json" --out "$OUT/segment_$precision" 2> "$OUT/segment_$precision.log"
  end=$(date +%s.%N)
  echo "$start $end" > "$OUT/segment_${precision}_wall.txt"
  for b in $batches; do
    "$radsam" bench-model --device "$DEVICE" "${half[@]}" --slices "$b" --repeats "$repeats" --out "$OUT/encoder_${precision}_b$b.json" > /dev/null 2>> "$OUT/bench.log"
  done
  "$radsam" bench-propagation --device "$DEVICE" "${half[@]}" --objects none --timing "$timing" --out "$OUT/propagation_$precision.json" > /dev/null 2>> "$OUT/bench.log"
done
python3 - "$OUT" "$DEVICE" "$batches" <<'PY'
import json, os, sys, glob
out, device, batches = sys.argv[1], sys.argv[2], [int(b) for b in sys.argv[3].split()]
name = "cpu"
try:
    import torch
    if device == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
except Exception:
    pass
report = {"device": device, "device_name": name, "segment": {}, "encoder": {}, "propagation": {}}
for p in ("f32", "f16"):
    r = json.load(open(f"{out}/segment_{p}/result.json"))
    t0, t1 = map(float, open(f"{out}/segment_{p}_wall.txt").read().split())
    report["segment"][p] = {
        "wall_seconds": t1 - t0, "total_seconds": r["total_seconds"], "encode_seconds": r["encode_seconds"],
        "encoded_slices": r["encoded_slices"],
        "targets": {t["label"]: {"dice": t["dice"], "volume_ml": t["volume_ml"]} for t in r["targets"]},
    }
    report["encoder"][p] = {}
    for b in batches:
        e = json.load(open(f"{out}/encoder_{p}_b{b}.json"))
        ms = e["encoder_ms_per_slice_batched"]
        report["encoder"][p][str(b)] = {"slices_per_second": 1000.0 / ms, "ms_per_slice": ms, "half": e["half"],
                                        "decoder_ms_per_slice_batched": e["decoder_ms_per_slice_batched"]}
    report["propagation"][p] = json.load(open(f"{out}/propagation_{p}.json")).get("timing")
json.dump(report, open(f"{out}/gpu_check.json", "w"), indent=1)
print(json.dumps({k: report[k] for k in ("device", "device_name")}), "->", f"{out}/gpu_check.json")
PY
