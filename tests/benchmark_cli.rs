//! `radsam bench` end to end on a tiny case (the CI smoke run of the benchmark): a small synthetic
//! phantom, LiteMedSAM as shipped, 2 clicks. Checks the CSV holds every measurement, the report's
//! tables and plots exist, a second run resumes without recomputing, other settings are refused,
//! a run folder without its units (a fresh clone) runs again, and bad input names its error code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("radsam-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn bench(out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_radsam"))
        .args([
            "bench",
            "--phantoms",
            "1",
            "--phantom-dims",
            "64,64,12",
            "--classes",
            "phantom liver,phantom spleen",
            "--model",
            "lite_medsam",
            "--device",
            "cpu",
        ])
        .args(["--max-clicks", "2", "--cvpr25-clicks", "2", "--known-classes", "phantom liver", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_tiny_benchmark_reports_every_protocol_and_resumes() {
    let out = out_dir("smoke");
    let first = bench(&out, &[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let csv = std::fs::read_to_string(out.join("cases.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0]
            .starts_with("model,dataset,case,class_id,class,known,level,prompt,carry,oracle,click_mode,clicks,dice"),
        "{}",
        lines[0]
    );
    // Per object: 2 levels x 2 prompts x 2 carries x (0..=2 clicks) + oracle (volume 2x2, slice 2)
    // + the reference pipeline (volume box, no clicks) + the CVPR 2025 protocol (2 carries x 0..=2 clicks).
    let per_object = 2 * 2 * 2 * 3 + 4 + 2 + 1 + 2 * 3;
    let objects = (lines.len() - 1) / per_object;
    assert_eq!((lines.len() - 1) % per_object, 0, "{csv}");
    assert_eq!(objects, 2, "liver and spleen of the phantom: {csv}");
    for l in &lines[1..] {
        let dice: f64 = l.split(',').nth(12).unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&dice), "{l}");
    }
    assert!(csv.contains(",phantom liver,known,") && csv.contains(",phantom spleen,unknown,"));

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for heading in [
        "## Dice by prompt (paper Table 2)",
        "## Known vs unknown classes (paper Table 3)",
        "## Mask carry vs box carry (paper Table 5)",
        "## Oracle mask (paper Table 6)",
        "## Dice against clicks",
        "## Drift along the propagation",
        "## Per class",
        "## Speed and memory",
    ] {
        assert!(report.contains(heading), "{heading} missing:\n{report}");
    }
    assert_eq!(
        lines.iter().filter(|l| l.contains(",volume,box,reference_box,false,")).count(),
        2,
        "one reference-pipeline run per object"
    );
    assert!(report.contains("reference pipeline, box |"), "Table 5 has the reference pipeline:\n{report}");
    assert_eq!(
        lines.iter().filter(|l| l.contains(",cvpr25,box,")).count(),
        2 * 2 * 3,
        "CVPR 2025: 2 objects x 2 carries x 0..=2 clicks"
    );
    assert!(report.contains("## CVPR 2025 protocol") && report.contains("| 0 clicks | 2 clicks | AUC |"), "{report}");
    // Drift: one row per slice of each object for each of the three carries (volume box, no clicks).
    let drift = std::fs::read_to_string(out.join("drift.csv")).unwrap();
    let drift_rows: Vec<&str> = drift.lines().skip(1).collect();
    let slices: usize = csv
        .lines()
        .skip(1)
        .filter(|l| l.contains(",volume,box,reference_box,"))
        .map(|l| l.split(',').nth(13).unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(drift_rows.len(), 3 * slices, "{drift}");
    assert!(drift_rows.iter().any(|l| l.contains(",0,")), "the prompted slice is offset 0");
    assert!(report.contains("| lite_medsam | Cpu | 1 |"), "speed row:\n{report}");
    for png in ["clicks.png", "classes.png", "drift.png"] {
        let img = image::open(out.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
        assert!(img.width() > 400 && img.height() > 150, "{png}: {}x{}", img.width(), img.height());
    }

    // Again: nothing left to do, the same measurements.
    let second = bench(&out, &[]);
    assert!(second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("resuming: 1 of 1"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(std::fs::read_to_string(out.join("cases.csv")).unwrap(), csv);

    // The report alone, from the folder's units and settings.
    std::fs::remove_file(out.join("cases.csv")).unwrap();
    let report_only = Command::new(env!("CARGO_BIN_EXE_radsam"))
        .args(["bench", "--report-only", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(report_only.status.success(), "{}", String::from_utf8_lossy(&report_only.stderr));
    assert_eq!(std::fs::read_to_string(out.join("cases.csv")).unwrap(), csv);

    // Other protocol settings in the same folder: refused, nothing changed.
    let other = bench(&out, &["--click-mode", "cvpr25"]);
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("holds a run with other settings"));
    assert_eq!(std::fs::read_to_string(out.join("cases.csv")).unwrap(), csv);
    // The negative erase is such a setting, off unless asked for: a run saved without it (every
    // committed run from before it existed) resumes, one asking for it is refused here.
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["protocol"]["negative_erase"].as_bool(), Some(false), "{run}");
    let erasing = bench(&out, &["--negative-erase"]);
    assert!(String::from_utf8_lossy(&erasing.stderr).contains("holds a run with other settings"));
    // So are the point start and the prompt box kept (their defaults: what runs did before them).
    assert_eq!(
        (run["protocol"]["point_start"].as_str(), run["protocol"]["keep_prompt_box"].as_bool()),
        (Some("primary"), Some(false)),
        "{run}"
    );
    for other in [&["--point-start", "best-iou"][..], &["--keep-prompt-box"]] {
        let refused = bench(&out, other);
        assert!(String::from_utf8_lossy(&refused.stderr).contains("holds a run with other settings"), "{other:?}");
    }

    // A committed run in a fresh clone: its settings and report, no units (they are not
    // committed). Rerunning recomputes them and gives the same measurements.
    std::fs::remove_dir_all(out.join("units")).unwrap();
    let fresh_clone = bench(&out, &[]);
    assert!(fresh_clone.status.success(), "{}", String::from_utf8_lossy(&fresh_clone.stderr));
    assert_eq!(std::fs::read_to_string(out.join("cases.csv")).unwrap(), csv);
    std::fs::remove_dir_all(out).unwrap();
}

/// A dataset folder in the nnU-Net/AMOS layout (a phantom written as NIfTI, names in dataset.json),
/// with the CVPR 2025 clicks and tight prompts.
#[test]
fn a_dataset_folder_with_cvpr25_clicks_and_tight_prompts() {
    use radsam::volume::phantom::{generate, PhantomConfig};
    use radsam::volume::{write_nifti, Volume};
    let data = out_dir("nnunet");
    std::fs::create_dir_all(data.join("imagesTr")).unwrap();
    std::fs::create_dir_all(data.join("labelsTr")).unwrap();
    let p = generate(&PhantomConfig { dims: [64, 64, 12], spacing: [5.0, 5.0, 20.0], ..Default::default() }, 3);
    write_nifti(&data.join("imagesTr/case1_0000.nii.gz"), &p.volume).unwrap();
    let labels = Volume::synthetic(
        p.labels.iter().map(|&v| v as f32).collect(),
        p.volume.dims(),
        p.volume.spacing,
        p.volume.affine,
    );
    write_nifti(&data.join("labelsTr/case1.nii.gz"), &labels).unwrap();
    std::fs::write(data.join("dataset.json"), r#"{"labels": {"0": "background", "1": "liver", "2": "spleen"}}"#)
        .unwrap();
    // A second case whose image is corrupt: reported and skipped, the run goes on.
    std::fs::write(data.join("imagesTr/case2_0000.nii.gz"), b"not a NIfTI file").unwrap();
    std::fs::copy(data.join("labelsTr/case1.nii.gz"), data.join("labelsTr/case2.nii.gz")).unwrap();

    let out = out_dir("cvpr25");
    let run = Command::new(env!("CARGO_BIN_EXE_radsam"))
        .args(["bench", "--data"])
        .arg(&data)
        .args([
            "--classes",
            "liver,spleen",
            "--model",
            "lite_medsam",
            "--device",
            "cpu",
            "--max-clicks",
            "2",
            "--click-mode",
            "cvpr25",
            "--cvpr25-clicks",
            "0",
            "--prompts",
            "tight",
            "--no-oracle",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let csv = std::fs::read_to_string(out.join("cases.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2 * (2 * 2 * 2 * 3 + 1), "2 objects x (2 levels x 2 prompts x 2 carries x 0..=2 clicks + the reference pipeline), no oracle, no CVPR 2025 runs");
    assert!(
        !std::fs::read_to_string(out.join("report.md")).unwrap().contains("## CVPR 2025 protocol"),
        "--cvpr25-clicks 0 turns the protocol off"
    );
    assert!(rows.iter().all(|l| l.contains(",cvpr25,") && l.contains(",false,") && l.contains("nnunet")), "{csv}");
    assert!(
        rows.iter().any(|l| l.contains(",liver,")) && rows.iter().any(|l| l.contains(",spleen,")),
        "names from dataset.json"
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(!report.contains("Known vs unknown") && !report.contains("Oracle mask"), "no split, no oracle asked");
    assert!(
        report.contains("**Skipped volumes**") && report.contains("case2_0000.nii.gz") && report.contains("[VOLUME_"),
        "{report}"
    );
    assert!(rows.iter().all(|l| l.contains(",case1,")), "the corrupt case has no rows");
    std::fs::remove_dir_all(out).unwrap();
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn the_click_diagnosis_scores_single_clicks_on_a_phantom() {
    let out = out_dir("diagnosis");
    let run = bench(&out, &["--diagnose-clicks"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let csv = std::fs::read_to_string(out.join("click_diagnosis.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "model,case,class,carry,slice,distance,positive,placement,error_pixels,slice_dice_before,slice_dice_after,volume_dice_before,volume_dice_after");
    let rows: Vec<Vec<String>> = lines.map(|l| l.split(',').map(str::to_string).collect()).collect();
    assert!(!rows.is_empty(), "the shipped LiteMedSAM leaves errors to click on");
    for r in &rows {
        let v = |i: usize| r[i].parse::<f64>().unwrap();
        assert!((9..=12).all(|i| (0.0..=1.0).contains(&v(i))), "{r:?}");
        assert!(v(8) >= 1.0, "a click is drawn from a non-empty error: {r:?}");
        assert!(r[3] == "mask" || r[3] == "box");
        assert!(r[7] == "uniform" || r[7] == "centre");
    }
    // Clicks of both kinds occur.
    assert!(rows.iter().any(|r| r[6] == "true") && rows.iter().any(|r| r[6] == "false"), "{csv}");
    let md = std::fs::read_to_string(out.join("click_diagnosis.md")).unwrap();
    assert!(md.contains("| lite_medsam | mask | positive | uniform |") && md.contains("| lite_medsam | box |"), "{md}");
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn bad_input_is_named() {
    let out = out_dir("bad");
    let empty = out_dir("empty-dataset");
    std::fs::create_dir_all(&empty).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_radsam"))
        .args(["bench", "--data"])
        .arg(&empty)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("DATA_NO_PAIRS") && err.contains(&*empty.to_string_lossy()), "{err}");
    let run = Command::new(env!("CARGO_BIN_EXE_radsam"))
        .args(["bench", "--phantoms", "1", "--click-mode", "nearest", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&run.stderr).contains("--click-mode nearest: expected uniform or cvpr25"));
    let run = Command::new(env!("CARGO_BIN_EXE_radsam"))
        .args(["bench", "--phantoms", "1", "--point-start", "centre", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&run.stderr)
            .contains("--point-start centre: expected primary, best-iou, box, assist or assist-box"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // A point assist asked of a model whose file holds none, or lent without being used: refused
    // before any slice is encoded.
    for (i, (flags, said)) in [
        (&["--model", "lite_medsam", "--point-start", "assist"][..], "lite_medsam holds no point assist"),
        (
            &["--model", "lite_medsam", "--point-start", "assist-box"][..],
            "assist-box: lite_medsam holds no point assist",
        ),
        (
            &["--point-assist", "mobile_sam"][..],
            "--point-assist MODEL answers points with --point-start assist or assist-box only",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let run = Command::new(env!("CARGO_BIN_EXE_radsam"))
            .args(["bench", "--phantoms", "1", "--out"])
            .arg(out_dir(&format!("point-assist-{i}")))
            .args(flags)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && err.contains(said) && !err.contains("encoding"), "{err}");
    }
    let run = Command::new(env!("CARGO_BIN_EXE_radsam"))
        .args(["bench", "--phantoms", "1", "--model", "sam_vit_q", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("--model sam_vit_q: unknown model"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let run = Command::new(env!("CARGO_BIN_EXE_radsam"))
        .args(["bench", "--phantoms", "1", "--model", "lite_medsam=/nonexistent.safetensors", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&run.stderr).contains("weights /nonexistent.safetensors not found"));
    std::fs::remove_dir_all(empty).unwrap();
    let _ = std::fs::remove_dir_all(out);
}
