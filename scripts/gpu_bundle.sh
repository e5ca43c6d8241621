#!/usr/bin/env bash
# `make gpu-bundle` (issue #20): everything a GPU host needs for the project's GPU check, in one
# git-ignored folder (default gpu/bundle, under 64 MiB so the device tool can carry it): the
# stripped `radsam` binary, the libraries it links (libraries.txt: the host must provide libtorch),
# the RadSAM weights (merged with their base, half precision), the validation scan and the sample CT with their labels, the main job, and
# the check itself (run.sh, from scripts/gpu_check.sh). On the GPU host, as ../shared/gpu.md says:
#   bash gpu/bundle/run.sh            # writes $OUT/gpu_check.json (OUT defaults to gpu/bundle/out)
# DEVICE=cpu QUICK=1 runs the same script here, smaller (tests/gpu_bundle.rs does).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${RADSAM_CACHE:-$HOME/.cache/radsam}
data=$cache/data/totalsegmentator
bin=${CARGO_TARGET_DIR:-target}/release
out=${1:-gpu/bundle}
rm -rf "$out" && mkdir -p "$out/bin" "$out/models" "$out/data/totalsegmentator"
cp "$bin/radsam" "$out/bin/"
strip "$out/bin/radsam" 2>/dev/null || true
# The RadSAM file is a fine-tuned delta on LiteMedSAM's 38 MB checkpoint: merged here into one
# whole checkpoint, carried in half precision (../shared/gpu.md; the loader widens it), 24 MB.
# Its version hash is the bundle's own, and its encoder's f32 path runs on f16-rounded weights.
"${PYTHON:-python3}" - models/radsam.safetensors "$cache/weights/lite_medsam.safetensors" "$out/models/radsam.safetensors" <<'PY'
import sys
from safetensors import safe_open
from safetensors.torch import load_file, save_file
delta_path, base_path, out_path = sys.argv[1:]
base, delta = load_file(base_path), load_file(delta_path)
# The point assist ("assist." tensors: a whole fine-tuned MobileSAM on its own 39 MB base) stays
# out: the bundle must fit in 64 MiB and the GPU check prompts with boxes, which the assist never
# answers. On the bundle, a slice prompted by points alone is answered by RadSAM itself.
delta = {k: v for k, v in delta.items() if not k.startswith("assist.")}
# A correction head ("edit." tensors, `radsam-trainer compose`): a second decoder, whole in the
# merged checkpoint too (the base's decoder, overlaid by the file's "edit." tensors).
if any(k.startswith("edit.") for k in delta):
    base.update({"edit." + k: v for k, v in base.items() if k.startswith(("prompt_encoder.", "mask_decoder."))})
unknown = sorted(set(delta) - set(base))
if unknown:
    sys.exit(f"the fine-tuned tensors {unknown[:3]} are not in the base checkpoint")
base.update(delta)
with safe_open(delta_path, "pt") as f:
    meta = {k: v for k, v in (f.metadata() or {}).items() if k == "radsam.input_window"}
save_file({k: v.half().contiguous() for k, v in base.items()}, out_path, metadata=meta)
PY
cp -r "$data/example_ct_dicom" "$data/example_ct.nii.gz" "$data/example_seg_dicom.nii.gz" \
  "$data/example_seg_fast_force_split.nii.gz" "$out/data/totalsegmentator/"
# What the binary links: libtorch's libraries come from the host's torch (LD_LIBRARY_PATH), the
# rest from its system. libtorch_cuda.so must be among them, or the binary cannot see the GPU.
{
  echo "# NEEDED by bin/radsam (readelf -d); libtorch*, libc10* come from the host's torch/lib"
  readelf -d "$out/bin/radsam" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
} > "$out/libraries.txt"
grep -q libtorch_cuda "$out/libraries.txt" || { echo "gpu-bundle: bin/radsam does not link libtorch_cuda.so: it would run CPU-only" >&2; exit 1; }
cp scripts/gpu_check.sh "$out/run.sh"
chmod +x "$out/run.sh"
size=$(du -sb "$out" | cut -f1)
if [ "$size" -gt $((64 << 20)) ]; then
  echo "gpu-bundle: $out is $size bytes, over the 64 MiB the device tool carries" >&2
  exit 1
fi
echo "gpu-bundle: $out ($((size >> 20)) MiB): bash $out/run.sh"
