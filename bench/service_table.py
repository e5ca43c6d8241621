"""Table of bench/run_service_bench.sh: jobs per minute and seconds per stage, service vs the CLI
reference, from the run's CSV files (stage times as PostgreSQL recorded them)."""
import csv, json, statistics, sys
from pathlib import Path

work, n, machine = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ref = [float(r[1]) for r in csv.reader(open(work / "reference.csv"))]
walls = {r[0]: {"workers": int(r[1]), "threads_each": int(r[2]), "wall_s": float(r[3])} for r in csv.reader(open(work / "wall.csv"))}
jobs = list(csv.DictReader(open(work / "jobs.csv")))
jobs = [j for j in jobs if j["job_id"].split("-")[0] in walls]
stages = ["fetch_s", "decode_s", "encode_s", "propagate_s", "upload_s", "commit_s"]
out = {"machine": machine, "jobs_per_run": n, "reference_cli_s": ref, "runs": {}}
lines = [
    "# Queue service benchmark (bench/run_service_bench.sh)", "",
    f"Machine: {machine}, CPU only. Each job: liver (box + 1 click) and spleen (box) on the validation",
    "DICOM scan (512x512x20), project RadSAM, mask carry; volume from S3, masks (NIfTI + DICOM SEG +",
    "result.json) to S3, results to PostgreSQL. Reference: `radsam segment` on the same job from local",
    "files, one process per job, no services, in the same run.", "",
    f"| setup | jobs | wall s | jobs/min | mean s/job (processing) | fetch | decode | encode | propagate | upload | commit | service overhead |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
]
ref_mean = statistics.mean(ref)
lines.append(f"| reference: radsam segment (CLI, 1 process/job) | {len(ref)} | {sum(ref):.1f} | {60 * len(ref) / sum(ref):.2f} | {ref_mean:.2f} | - | - | - | - | - | - | - |")
for name, w in walls.items():
    rows = [j for j in jobs if j["job_id"].startswith(name + "-")]
    mean = {s: statistics.mean(float(j[s]) for j in rows) for s in stages + ["total_s"]}
    overhead = mean["fetch_s"] + mean["upload_s"] + mean["commit_s"] + (mean["total_s"] - sum(mean[s] for s in stages))
    share = overhead / mean["total_s"]
    out["runs"][name] = {**w, "jobs": len(rows), "jobs_per_min": 60 * len(rows) / w["wall_s"], "mean_stage_s": mean, "overhead_s": overhead, "overhead_share": share}
    label = f"service, {w['workers']} worker(s) x {w['threads_each']} thread(s)"
    lines.append(f"| {label} | {len(rows)} | {w['wall_s']:.1f} | {60 * len(rows) / w['wall_s']:.2f} | {mean['total_s']:.2f} | " + " | ".join(f"{mean[s]:.2f}" for s in stages) + f" | {overhead:.2f} s ({100 * share:.1f}%) |")
lines += [
    "",
    "Service overhead = fetch + upload (incl. writing the mask files) + commit + the rest of a job's",
    "time outside the stages (claiming, model thread hand-off), as a share of the job's processing",
    "time (PostgreSQL jobs.total_s, delivery to commit). Target: under 10%.",
]
for name, r in out["runs"].items():
    lines.append(f"- {name}: {r['jobs_per_min']:.2f} jobs/min = {r['jobs_per_min'] / (60 * len(ref) / sum(ref)):.2f}x the CLI reference; overhead {100 * r['overhead_share']:.1f}% of a job.")
(work / "service_bench.json").write_text(json.dumps(out, indent=1))
print("\n".join(lines))
