//! The bad-input corpus (tests/bad_corpus, the same generators as the CLI's tests/bad_inputs.rs)
//! through the queue, against one real worker: every bad volume and DICOM folder, named by a
//! file:// URI under the worker's RADSAM_FILE_ROOTS, ends as a failed job with its stable code
//! after one attempt, with no result row and no object in S3; the worker stays healthy, under
//! 2 GB of peak memory over the whole corpus, and then segments a valid volume.

#[path = "../../tests/bad_corpus/mod.rs"]
mod bad_corpus;
mod common;

use bad_corpus::{corpus, Nii};
use common::*;
use serde_json::json;
use std::time::Instant;

/// The code a worker gives where its storage layer refuses the path before any reader sees it:
/// file:// paths (and the links inside a folder) must resolve inside the roots, and a missing
/// path is the store's "not found". Everything else gets the reader's own code, as in the CLI.
fn worker_code(name: &str, cli_code: &'static str) -> &'static str {
    match name {
        "link to /dev/zero as the volume"
        | "link to /dev/zero in a series folder"
        | "link to /etc in a series folder" => "STORAGE_FORBIDDEN",
        "absent file" => "STORAGE_NOT_FOUND",
        _ => cli_code,
    }
}

fn job(job_id: &str, volume: &std::path::Path, bbox: [f64; 4]) -> String {
    json!({
        "schema_version": 1, "job_id": job_id, "correlation_id": "bad-corpus",
        "volume_uri": format!("file://{}", volume.display()),
        "targets": [{"label": "organ", "initial_prompt": {"slice": 0, "box": bbox}, "boundaries": {"top": 0, "bottom": 1}}]
    })
    .to_string()
}

/// The box of a case: its `--box x0,y0,x1,y1` when it gives one, else the CLI's default.
fn case_box(extra: &[&str]) -> [f64; 4] {
    let text = extra.iter().position(|a| *a == "--box").map(|i| extra[i + 1]).unwrap_or("2,2,20,20");
    let v: Vec<f64> = text.split(',').map(|s| s.parse().unwrap()).collect();
    [v[0], v[1], v[2], v[3]]
}

fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap()
}

#[test]
fn every_bad_volume_gets_its_code_through_the_queue_and_the_worker_carries_on() {
    let world = World::new("badvol");
    let dir = tempfile::tempdir().unwrap();
    let cases = corpus(dir.path());
    // Cases that change the CLI's limits for one run (--max-voxels, RADSAM_MAX_VOLUME_BYTES) are
    // the CLI's alone: a worker's limits are set once, for every job.
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|c| c.env.is_empty() && c.extra.iter().all(|a| *a == "--box" || a.contains(',')))
        .collect();
    assert!(cases.len() >= 35, "{} kinds", cases.len());
    let roots = dir.path().canonicalize().unwrap();
    let mut worker = world.worker(&[("RADSAM_FILE_ROOTS", roots.to_str().unwrap()), ("RADSAM_RETRIES", "1")]);

    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let id = format!("bad-{i:02}");
        let t = Instant::now();
        world.submit(&job(&id, &c.volume, case_box(&c.extra)));
        let status = world.wait_status(&id, &["succeeded", "failed"], 180, &mut [&mut worker]);
        let code: Vec<Option<String>> = world.query("SELECT error_code FROM jobs WHERE job_id = $1", &id);
        let message: Vec<Option<String>> = world.query("SELECT error_message FROM jobs WHERE job_id = $1", &id);
        let (code, message) = (code[0].clone().unwrap_or_default(), message[0].clone().unwrap_or_default());
        let attempts: Vec<i32> = world.query("SELECT attempts FROM jobs WHERE job_id = $1", &id);
        let rows: Vec<String> = world.query("SELECT label FROM results WHERE job_id = $1", &id);
        let scratch = tempfile::tempdir().unwrap();
        let objects = world.rt.block_on(world.storage.fetch(&format!("s3://results/{id}/"), scratch.path()));
        println!(
            "{:<55} {:<28} {:>5.1} s  {}",
            c.name,
            code,
            t.elapsed().as_secs_f64(),
            message.lines().next().unwrap_or("")
        );
        let expected = worker_code(c.name, c.code);
        let problem = if status != "failed" {
            Some(format!("status {status}"))
        } else if code != expected {
            Some(format!("code {code}, expected {expected}: {message}"))
        } else if expected == c.code && !message.contains(c.says) {
            Some(format!("message does not say {:?}: {message}", c.says))
        } else if attempts != vec![1] {
            Some(format!("attempts {attempts:?}: a bad volume is not worth a second try"))
        } else if !rows.is_empty() || objects.is_ok() {
            Some(format!("left behind: {} result rows, objects: {}", rows.len(), objects.is_ok()))
        } else {
            None
        };
        if let Some(p) = problem {
            failures.push(format!("{}: {p}", c.name));
        }
    }
    let peak_kb = peak_rss_kb(worker.child.id());
    println!(
        "{} kinds through one worker; its peak resident memory over the corpus: {:.0} MB",
        cases.len(),
        peak_kb as f64 / 1024.0
    );
    assert!(
        failures.is_empty(),
        "{} of {} kinds failed:\n{}\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        worker.log_tail()
    );
    assert!(peak_kb < 2 << 20, "the worker's peak memory {peak_kb} kB (limit 2 GB)");
    assert_eq!(worker.http("/healthz").map(|(code, _)| code), Some(200));
    let log = std::fs::read_to_string(&worker.log).unwrap();
    assert!(!log.contains("panicked") && !log.contains("stack backtrace"), "{}", worker.log_tail());

    // The same worker then segments a valid volume from the same generator.
    let good = Nii::int16([32, 32, 4]).write(&dir.path().join("good.nii.gz"));
    world.submit(&job("good", &good, [2.0, 2.0, 20.0, 20.0]));
    world.wait_status("good", &["succeeded", "failed"], 180, &mut [&mut worker]);
    assert_eq!(world.status("good").as_deref(), Some("succeeded"), "{}", worker.log_tail());
    let rows: Vec<String> = world.query("SELECT mask_uri FROM results WHERE job_id = $1", "good");
    assert_eq!(rows, vec!["s3://results/good/organ.nii.gz".to_string()]);
}
