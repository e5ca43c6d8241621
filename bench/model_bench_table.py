#!/usr/bin/env python3
"""Joins the per-run JSON files of run_model_bench.sh into bench/results/model_bench.{json,md}."""
import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

runs = [json.loads(Path(p).read_text()) for p in sys.argv[1:]]
out = Path(__file__).resolve().parent / "results"
out.mkdir(exist_ok=True)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
machine = f"{cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores"
when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
(out / "model_bench.json").write_text(json.dumps({"machine": machine, "date": when, "runs": runs}, indent=2))

def ms(v):
    return "n/a" if v is None else f"{v:.1f}"

lines = [
    "# Model benchmark: Rust (tch) vs PyTorch reference",
    "",
    f"Machine: {machine} (CPU only). Date: {when}. Command: `make bench` (bench/run_model_bench.sh).",
    "Same slices of the sample CT, same preprocessing, same libtorch thread count, one warm-up, median of repeats.",
    "",
    "| model | input | threads | implementation | encoder ms/slice, one by one | encoder ms/slice, batched | decoder ms/slice, one by one | decoder ms/slice, batched | max abs diff vs reference (embedding / logits / IoU) |",
    "|---|---|---|---|---|---|---|---|---|",
]
for r in runs:
    d = r.get("max_abs_diff_vs_reference")
    diff = "reference" if d is None else f"{d['embedding']:.1e} / {d['low_res_logits']:.1e} / {d['iou']:.1e}"
    lines.append(f"| {r['model']} | {r['image_size']} px, {len(r['slices'])} slices | {r['threads']} | {r['implementation']} | "
                 f"{ms(r['encoder_ms_per_slice_one_by_one'])} | {ms(r['encoder_ms_per_slice_batched'])} | "
                 f"{ms(r['decoder_ms_per_slice_one_by_one'])} | {ms(r['decoder_ms_per_slice_batched'])} | {diff} |")
lines += ["", "Ratio Rust / reference (below 1: Rust is faster):", ""]
for rs in (r for r in runs if r["implementation"] == "rust-tch"):
    for ref in (r for r in runs if r["model"] == rs["model"] and r["implementation"] != "rust-tch"):
        ratio = lambda key: rs[key] / ref[key]
        lines.append(f"- {rs['model']} vs {ref['implementation']}: encoder {ratio('encoder_ms_per_slice_one_by_one'):.2f} (one by one), "
                     f"{ratio('encoder_ms_per_slice_batched'):.2f} (batched); decoder {ratio('decoder_ms_per_slice_one_by_one'):.2f} (one by one)")
lines += ["", "The Rust binary sets glibc malloc to serve large blocks from the heap and keep freed memory",
          "(src/allocator.rs); without it every large activation is a fresh mmap zeroed by page faults.",
          "The second reference row runs PyTorch with the same settings through MALLOC_* environment variables."]
(out / "model_bench.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
