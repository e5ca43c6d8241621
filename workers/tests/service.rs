//! The queue service against real services: RabbitMQ and PostgreSQL of the machine (started by
//! scripts/services.sh, which `make test` runs), and an S3 store (weed) that each test starts on its
//! own ports so it can stop it. Each test has its own queue prefix, database and buckets, and runs
//! real worker processes on the real validation CT (a DICOM series) with the project's RadSAM.

use radsam::error::Coded;
mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[test]
fn a_job_goes_through_queue_worker_s3_and_postgres() {
    let world = World::new("flow");
    let events = world.bind_events();
    let progress = world.bind_progress();
    let mut worker = world.worker(&[]);
    // The whole spleen (Dice is over the organ in the whole volume).
    world.submit(&spleen_job("job-flow", 19, 0));
    world.wait_status("job-flow", &["succeeded", "failed"], 300, &mut [&mut worker]);
    assert_eq!(world.status("job-flow").as_deref(), Some("succeeded"), "{}", worker.log_tail());

    // PostgreSQL: one result row, a plausible spleen, Dice against the reference, timings by stage.
    let dice: Vec<f64> = world.query("SELECT dice FROM results WHERE job_id = $1", "job-flow");
    assert_eq!(dice.len(), 1);
    assert!(dice[0] > 0.9, "spleen Dice {}", dice[0]);
    let ml: Vec<f64> = world.query("SELECT volume_ml FROM organ_volumes WHERE job_id = $1", "job-flow");
    assert!(ml[0] > 20.0 && ml[0] < 400.0, "spleen volume {} mL", ml[0]);
    let stages: Vec<f64> = world.query(
        "SELECT fetch_s + decode_s + encode_s + propagate_s + upload_s + commit_s FROM jobs WHERE job_id = $1",
        "job-flow",
    );
    let total: Vec<f64> = world.query("SELECT total_s FROM jobs WHERE job_id = $1", "job-flow");
    assert!(stages[0] > 0.0 && stages[0] <= total[0] + 1e-6, "stages {} vs total {}", stages[0], total[0]);
    let version: Vec<String> = world.query("SELECT model_version FROM results WHERE job_id = $1", "job-flow");
    assert!(version[0].starts_with("radsam@sha256:"), "{}", version[0]);

    // S3: the masks under the job's deterministic keys, readable as volumes on the CT's grid.
    let mask_uri: Vec<String> = world.query("SELECT mask_uri FROM results WHERE job_id = $1", "job-flow");
    assert_eq!(mask_uri[0], "s3://results/job-flow/spleen.nii.gz");
    let scratch = tempfile::tempdir().unwrap();
    let (mask, seg) = world.rt.block_on(async {
        (
            world.storage.fetch(&mask_uri[0], scratch.path()).await.unwrap(),
            world.storage.fetch("s3://results/job-flow/seg.dcm", scratch.path()).await.unwrap(),
        )
    });
    let mask = radsam::volume::Volume::open(&mask, None, &Default::default()).unwrap();
    assert_eq!(mask.dims(), [512, 512, 20]);
    let result_of = |job: &str| -> Value {
        let path = world.rt.block_on(world.storage.fetch(&format!("s3://results/{job}/result.json"), scratch.path()));
        serde_json::from_str(&std::fs::read_to_string(path.unwrap()).unwrap()).unwrap()
    };
    assert!(std::fs::metadata(seg).unwrap().len() > 1000);

    // The result event, and the worker's own account in /metrics.
    let got = world.drain(&events);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["status"], "succeeded");
    assert_eq!(got[0]["targets"][0]["mask_uri"], "s3://results/job-flow/spleen.nii.gz");
    // Progress while it ran: the encoding's first and last report at least, in order, throttled.
    let reports = world.drain(&progress);
    let encoding: Vec<(u64, u64)> = reports
        .iter()
        .inspect(|r| assert_eq!((r["job_id"].as_str(), r["status"].as_str()), (Some("job-flow"), Some("running"))))
        .filter(|r| r["stage"] == "encoding slices")
        .map(|r| (r["done"].as_u64().unwrap(), r["total"].as_u64().unwrap()))
        .collect();
    assert!(encoding.len() >= 2 && encoding.len() <= 20, "{reports:?}");
    assert_eq!(encoding[0].0, 1, "the first batch");
    assert_eq!(*encoding.last().unwrap(), (20, 20), "the last batch");
    assert!(encoding.windows(2).all(|w| w[0].0 < w[1].0), "in order: {encoding:?}");
    assert_eq!(worker.metric("radsam_jobs_total{outcome=\"succeeded\"}"), 1.0);
    assert!(worker.metric("radsam_stage_seconds_count{stage=\"encode\"}") >= 1.0);
    // The queue as the broker reports it (read every 5 s): empty now, this worker consuming it.
    let deadline = Instant::now() + Duration::from_secs(15);
    while worker.metric("radsam_queue_consumers") < 1.0 {
        assert!(Instant::now() < deadline, "no queue reading in /metrics: {}", worker.log_tail());
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(worker.metric("radsam_queue_depth"), 0.0);

    // The same job again (a router resending it): acknowledged, not processed twice.
    world.submit(&spleen_job("job-flow", 19, 0));
    let deadline = Instant::now() + Duration::from_secs(60);
    while worker.metric("radsam_jobs_total{outcome=\"duplicate\"}") < 1.0 {
        assert!(Instant::now() < deadline, "{}", worker.log_tail());
        std::thread::sleep(Duration::from_millis(200));
    }
    let attempts: Vec<i32> = world.query("SELECT attempts FROM jobs WHERE job_id = $1", "job-flow");
    assert_eq!(attempts, vec![1]);

    // A correction (the dashboard sends one more click as a revision of the job, naming only
    // what changes): completed from its parent, whose saved session it resumes (below): only the
    // clicked slice 8 and the 8 below it (away from the prompt on 12) are decoded, their
    // embeddings from the worker's embedding cache, none encoded again; /metrics says so.
    assert_eq!(worker.metric("radsam_embedding_cache_total{event=\"miss\"}"), 20.0);
    let fix = json!({"schema_version": 1, "job_id": "job-flow-fix", "parent_job_id": "job-flow",
        "targets": [{"label": "spleen", "correction_clicks": [{"slice": 8, "x": 340, "y": 310, "positive": true}]}]});
    world.submit(&fix.to_string());
    world.wait_status("job-flow-fix", &["succeeded", "failed"], 120, &mut [&mut worker]);
    assert_eq!(world.status("job-flow-fix").as_deref(), Some("succeeded"), "{}", worker.log_tail());
    let stored: Vec<Value> = world.query("SELECT payload FROM jobs WHERE job_id = $1", "job-flow-fix");
    assert_eq!(stored[0]["volume_uri"], "s3://scans/ct/", "the parent's volume and prompts: {}", stored[0]);
    assert_eq!(stored[0]["targets"][0]["boundaries"], json!({"top": 19, "bottom": 0}));
    let revision: Vec<i32> = world.query("SELECT revision FROM results WHERE job_id = $1", "job-flow-fix");
    let clicks: Vec<i32> = world.query("SELECT clicks_applied FROM results WHERE job_id = $1", "job-flow-fix");
    assert_eq!((revision, clicks), (vec![2], vec![1]), "the spleen's second revision, with its click");
    let radsam = Path::new(env!("CARGO_BIN_EXE_radsam-worker")).with_file_name("radsam");
    let history = Command::new(&radsam)
        .args(["results", "--history", "job-flow-fix"])
        .env("DATABASE_URL", &world.database_url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&history.stdout);
    let chain: Vec<(&str, &str)> =
        text.lines().skip(1).map(|l| l.split_whitespace().collect::<Vec<_>>()).map(|w| (w[1], w[2])).collect();
    assert_eq!(chain, vec![("1", "job-flow"), ("2", "job-flow-fix")], "{text}");
    // A correction of a job that does not exist: recorded with its code, dead-lettered.
    world.submit(
        &json!({"schema_version": 1, "job_id": "job-orphan", "parent_job_id": "job-none", "targets": []}).to_string(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let codes = loop {
        let codes: Vec<String> =
            world.query("SELECT error_code FROM rejected_messages WHERE job_id = $1", "job-orphan");
        if !codes.is_empty() || Instant::now() > deadline {
            break codes;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(codes, vec!["JOB_PARENT_NOT_FOUND".to_string()], "{}", worker.log_tail());
    world.drain(&events);
    assert_eq!(worker.metric("radsam_embedding_cache_total{event=\"hit\"}"), 9.0);
    assert_eq!(worker.metric("radsam_embedding_cache_total{event=\"miss\"}"), 20.0, "no new miss");
    assert!(worker.metric("radsam_embedding_cache_stored_bytes") >= 20.0 * 2.0 * 1024.0 * 1024.0);
    let encode = |job: &str| world.query::<f64>("SELECT encode_s FROM jobs WHERE job_id = $1", job)[0];
    let (cold, warm) = (encode("job-flow"), encode("job-flow-fix"));
    assert!(warm < cold / 3.0, "encode seconds: cold {cold:.2}, warm {warm:.2}");
    // A revision that leaves the target as it was (a new correlation id only): its parent's mask,
    // nothing segmented or encoded, and the series decoded for the parent came from the worker's
    // memo of its last volume.
    let same = json!({"schema_version": 1, "job_id": "job-flow-same", "parent_job_id": "job-flow-fix",
        "correlation_id": "study-1b"});
    world.submit(&same.to_string());
    world.wait_status("job-flow-same", &["succeeded", "failed"], 120, &mut [&mut worker]);
    assert_eq!(world.status("job-flow-same").as_deref(), Some("succeeded"), "{}", worker.log_tail());
    let result = world.rt.block_on(world.storage.fetch("s3://results/job-flow-same/result.json", scratch.path()));
    let result: Value = serde_json::from_str(&std::fs::read_to_string(result.unwrap()).unwrap()).unwrap();
    assert_eq!(result["targets"][0]["reused_from_parent"], true, "{result}");
    assert_eq!((result["encoded_slices"].as_u64(), result["cached_slices"].as_u64()), (Some(0), Some(0)));
    assert_eq!(result["volume_reused"], true, "{result}");
    let ml = |job: &str| world.query::<f64>("SELECT volume_ml FROM results WHERE job_id = $1", job)[0];
    assert_eq!(ml("job-flow-same"), ml("job-flow-fix"), "the parent's mask");

    // Saved editing sessions (segment/snapshot.rs): job-flow-fix resumed job-flow's propagation
    // (0 clicks in it) and applied its click alone; job-flow-same handed its parent's session on;
    // a further correction of it resumes that one (1 click in it). Its mask is, bit for bit, that
    // of a fresh job replaying the prompt and both clicks.
    let fixed = result_of("job-flow-fix");
    assert_eq!(fixed["targets"][0]["clicks_resumed"], 0, "{fixed}");
    assert_eq!((fixed["cached_slices"].as_u64(), fixed["encoded_slices"].as_u64()), (Some(9), Some(0)), "{fixed}");
    assert_eq!(fixed["targets"][0]["session_file"], "sessions/spleen.session.gz", "{fixed}");
    assert_eq!(result["targets"][0]["session_file"], "sessions/spleen.session.gz", "handed on: {result}");
    let click_b = json!({"slice": 3, "x": 330, "y": 300, "positive": true});
    let fix2 = json!({"schema_version": 1, "job_id": "job-flow-fix2", "parent_job_id": "job-flow-same",
        "targets": [{"label": "spleen", "correction_clicks": [click_b]}]});
    world.submit(&fix2.to_string());
    world.wait_status("job-flow-fix2", &["succeeded", "failed"], 120, &mut [&mut worker]);
    assert_eq!(world.status("job-flow-fix2").as_deref(), Some("succeeded"), "{}", worker.log_tail());
    let fixed2 = result_of("job-flow-fix2");
    assert_eq!(fixed2["targets"][0]["clicks_resumed"], 1, "{fixed2}");
    assert_eq!(fixed2["targets"][0]["clicks_applied"], 2, "{fixed2}");
    let mut replay: Value = serde_json::from_str(&spleen_job("job-flow-replay", 19, 0)).unwrap();
    replay["targets"][0]["correction_clicks"] = json!([{"slice": 8, "x": 340, "y": 310, "positive": true}, click_b]);
    world.submit(&replay.to_string());
    world.wait_status("job-flow-replay", &["succeeded", "failed"], 120, &mut [&mut worker]);
    assert_eq!(world.status("job-flow-replay").as_deref(), Some("succeeded"), "{}", worker.log_tail());
    assert_eq!(result_of("job-flow-replay")["targets"][0]["clicks_resumed"], Value::Null);
    let voxels = |job: &str| {
        let path = world.rt.block_on(world.storage.fetch(&format!("s3://results/{job}/spleen.nii.gz"), scratch.path()));
        radsam::volume::Volume::open(&path.unwrap(), None, &Default::default()).unwrap().data
    };
    let resumed = voxels("job-flow-fix2");
    assert!(resumed == voxels("job-flow-replay"), "a resumed session gives the replay's mask");
    assert_ne!(resumed, voxels("job-flow-fix"), "the second click changed the mask");
    // A damaged saved session is refused and said so; the prompt and clicks are replayed.
    let damaged = "s3://results/job-flow-fix2/sessions/spleen.session.gz";
    world.rt.block_on(world.storage.put(damaged, b"\x1f\x8b not a session".to_vec())).unwrap();
    let fix3 = json!({"schema_version": 1, "job_id": "job-flow-fix3", "parent_job_id": "job-flow-fix2",
        "targets": [{"label": "spleen", "correction_clicks": [{"slice": 15, "x": 335, "y": 305, "positive": true}]}]});
    world.submit(&fix3.to_string());
    world.wait_status("job-flow-fix3", &["succeeded", "failed"], 120, &mut [&mut worker]);
    assert_eq!(world.status("job-flow-fix3").as_deref(), Some("succeeded"), "{}", worker.log_tail());
    let fixed3 = result_of("job-flow-fix3");
    assert_eq!(fixed3["targets"][0]["clicks_resumed"], Value::Null, "{fixed3}");
    assert!(fixed3["targets"][0]["resume_refused"].as_str().is_some_and(|r| r.contains("session")), "{fixed3}");
    assert_eq!(fixed3["targets"][0]["clicks_applied"], 3, "{fixed3}");
    world.drain(&events);
    world.drain(&progress);

    // An acceptance is recorded against the result; one for a target that does not exist is refused.
    world.rt.block_on(async {
        let db = radsam::db::Db::connect_lazy(&world.database_url).unwrap();
        db.accept("job-flow", "spleen", "dr-a", None, None).await.unwrap();
        assert_eq!(db.accept("job-flow", "liver", "dr-a", None, None).await.unwrap_err().code(), "DB_INVALID");
    });
    let kind: Vec<String> = world.query("SELECT kind FROM annotations WHERE job_id = $1", "job-flow");
    assert_eq!(kind, vec!["accepted".to_string()]);

    // SIGTERM with nothing in hand: a clean exit.
    assert!(worker.terminate().success());

    // A worker with RADSAM_CORRECTION_CARRY: result.json says so, and the session saved without
    // it is refused (the setting is part of its inputs); the prompt and all clicks are replayed.
    let mut carrying = world.worker(&[("RADSAM_CORRECTION_CARRY", "true")]);
    let fix4 = json!({"schema_version": 1, "job_id": "job-flow-fix4", "parent_job_id": "job-flow-fix3",
        "targets": [{"label": "spleen", "correction_clicks": [{"slice": 5, "x": 330, "y": 305, "positive": true}]}]});
    world.submit(&fix4.to_string());
    world.wait_status("job-flow-fix4", &["succeeded", "failed"], 120, &mut [&mut carrying]);
    assert_eq!(world.status("job-flow-fix4").as_deref(), Some("succeeded"), "{}", carrying.log_tail());
    let fixed4 = result_of("job-flow-fix4");
    assert_eq!((fixed3["correction_carry"].as_bool(), fixed4["correction_carry"].as_bool()), (Some(false), Some(true)));
    assert!(fixed4["targets"][0]["resume_refused"].as_str().is_some_and(|r| r.contains("other inputs")), "{fixed4}");
    assert_eq!(fixed4["targets"][0]["clicks_applied"], 4, "{fixed4}");
    assert!(carrying.terminate().success());

    // The same with RADSAM_NEGATIVE_ERASE=false (on by default) and RADSAM_CARRY_ENSEMBLE=true (off
    // by default); fix4's correction carry kept, so that these two are the inputs that differ from
    // the saved session's.
    let mut without_erase = world.worker(&[
        ("RADSAM_CORRECTION_CARRY", "true"),
        ("RADSAM_NEGATIVE_ERASE", "false"),
        ("RADSAM_CARRY_ENSEMBLE", "true"),
    ]);
    let fix5 = json!({"schema_version": 1, "job_id": "job-flow-fix5", "parent_job_id": "job-flow-fix4",
        "targets": [{"label": "spleen", "correction_clicks": [{"slice": 6, "x": 330, "y": 305, "positive": false}]}]});
    world.submit(&fix5.to_string());
    world.wait_status("job-flow-fix5", &["succeeded", "failed"], 120, &mut [&mut without_erase]);
    assert_eq!(world.status("job-flow-fix5").as_deref(), Some("succeeded"), "{}", without_erase.log_tail());
    let fixed5 = result_of("job-flow-fix5");
    assert_eq!((fixed4["negative_erase"].as_bool(), fixed5["negative_erase"].as_bool()), (Some(true), Some(false)));
    assert_eq!((fixed4["carry_ensemble"].as_bool(), fixed5["carry_ensemble"].as_bool()), (Some(false), Some(true)));
    assert!(fixed5["targets"][0]["resume_refused"].as_str().is_some_and(|r| r.contains("other inputs")), "{fixed5}");
    assert_eq!(fixed5["targets"][0]["clicks_applied"], 5, "{fixed5}");
    assert!(without_erase.terminate().success());
}

#[test]
fn bad_messages_are_recorded_and_dead_lettered_and_the_worker_carries_on() {
    let world = World::new("poison");
    let mut worker = world.worker(&[]);
    // Not JSON; a job whose volume is not a CT; a job with a prompt outside its boundaries.
    world.submit("{this is not a job");
    world.rt.block_on(world.storage.put("s3://scans/broken.nii.gz", b"\x1f\x8b not really gzip".to_vec())).unwrap();
    let mut broken = serde_json::from_str::<Value>(&spleen_job("job-broken-volume", 15, 9)).unwrap();
    broken["volume_uri"] = json!("s3://scans/broken.nii.gz");
    world.submit(&broken.to_string());
    world.submit(&spleen_job("job-bad-prompt", 5, 0));
    // What three workers that died on a job leave behind: a running row, 3 attempts, no requeue.
    world.rt.block_on(async {
        let pool = sqlx::PgPool::connect(&world.database_url).await.unwrap();
        sqlx::query("INSERT INTO jobs (job_id, status, attempts) VALUES ('job-poison', 'running', 3)")
            .execute(&pool)
            .await
            .unwrap();
    });
    world.submit(&spleen_job("job-poison", 13, 11));
    world.submit(&spleen_job("job-good", 13, 11));
    world.wait_status("job-good", &["succeeded"], 300, &mut [&mut worker]);

    assert_eq!(world.status("job-broken-volume").as_deref(), Some("failed"));
    let code: Vec<Option<String>> = world.query("SELECT error_code FROM jobs WHERE job_id = $1", "job-broken-volume");
    assert!(code[0].as_deref().unwrap().starts_with("VOLUME_"), "{code:?}");
    let code: Vec<Option<String>> = world.query("SELECT error_code FROM jobs WHERE job_id = $1", "job-bad-prompt");
    assert_eq!(code[0].as_deref(), Some("PROMPT_SLICE_OUTSIDE_BOUNDARIES"), "{}", worker.log_tail());
    let code: Vec<Option<String>> = world.query("SELECT error_code FROM jobs WHERE job_id = $1", "job-poison");
    assert_eq!(code[0].as_deref(), Some("JOB_POISON"));
    let rejected: Vec<String> = world.query("SELECT error_code FROM rejected_messages WHERE $1 = $1", "");
    assert_eq!(rejected, vec!["JOB_MALFORMED".to_string()]);
    let results: Vec<String> = world.query("SELECT job_id FROM results WHERE job_id <> $1", "job-good");
    assert!(results.is_empty(), "failed jobs leave no result rows: {results:?}");

    // All four reached the dead-letter queue, and nothing is left in the jobs queue.
    let dead = world.drain(&world.topology.dead_queue);
    assert_eq!(dead.len(), 4, "{dead:?}");
    assert!(world.drain(&world.topology.jobs_queue).is_empty());
    assert_eq!(worker.metric("radsam_jobs_total{outcome=\"failed\"}"), 3.0);
    assert_eq!(worker.metric("radsam_jobs_total{outcome=\"rejected\"}"), 1.0);
}

#[test]
fn a_worker_killed_mid_job_leaves_it_to_be_finished_exactly_once() {
    let world = World::new("kill");
    // The workers' temp dir of their own, to see the killed worker's scratch folder.
    let tmp = world._dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let tmp_env = [("TMPDIR", tmp.to_str().unwrap())];
    let mut first = world.worker(&tmp_env);
    world.submit(&spleen_job("job-kill", 19, 0));
    world.wait_status("job-kill", &["running"], 120, &mut [&mut first]);
    // Mid-job: the worker has claimed it and is fetching or encoding.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        world.status("job-kill").as_deref(),
        Some("running"),
        "the job finished before the kill; {}",
        first.log_tail()
    );
    let killed_pid = first.child.id();
    unsafe { libc::kill(killed_pid as i32, libc::SIGKILL) };
    first.child.wait().unwrap();
    let scratch_of_killed = || {
        std::fs::read_dir(&tmp)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("radsam-job-{killed_pid}-")))
            .count()
    };
    assert_eq!(scratch_of_killed(), 1, "the killed worker left its job's scratch folder");

    let mut second = world.worker(&tmp_env);
    world.wait_status("job-kill", &["succeeded", "failed"], 300, &mut [&mut second]);
    assert_eq!(world.status("job-kill").as_deref(), Some("succeeded"), "{}", second.log_tail());
    assert_eq!(scratch_of_killed(), 0, "the next worker removed the dead worker's scratch folder at start");
    let attempts: Vec<i32> = world.query("SELECT attempts FROM jobs WHERE job_id = $1", "job-kill");
    assert_eq!(attempts, vec![2], "one killed attempt, one that finished");
    let rows: Vec<String> = world.query("SELECT label FROM results WHERE job_id = $1", "job-kill");
    assert_eq!(rows, vec!["spleen".to_string()], "finished exactly once");
    assert!(world.drain(&world.topology.jobs_queue).is_empty());
}

#[test]
fn s3_down_for_a_while_then_back_the_job_completes() {
    let mut world = World::new("s3down");
    let mut worker = world.worker(&[("RADSAM_RETRIES", "10")]);
    world.s3.stop();
    world.submit(&spleen_job("job-s3", 13, 11));
    world.wait_status("job-s3", &["running"], 60, &mut [&mut worker]);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(world.status("job-s3").as_deref(), Some("running"), "waiting for the store");
    world.s3.restart();
    world.wait_status("job-s3", &["succeeded", "failed"], 300, &mut [&mut worker]);
    assert_eq!(world.status("job-s3").as_deref(), Some("succeeded"), "{}", worker.log_tail());
    assert!(
        worker.log_tail().contains("retrying")
            || std::fs::read_to_string(&worker.log).unwrap().contains("STORAGE_UNAVAILABLE")
    );
}

#[test]
fn a_job_that_meets_a_dead_store_on_every_delivery_is_failed_on_the_last_one_not_left_queued() {
    let mut world = World::new("exhausted");
    // No retries within a delivery: each delivery meets the dead store once and requeues the job.
    let mut worker = world.worker(&[("RADSAM_RETRIES", "0")]);
    world.s3.stop();
    world.submit(&spleen_job("job-exhausted", 13, 11));
    let status = world.wait_status("job-exhausted", &["failed", "succeeded"], 240, &mut [&mut worker]);
    assert_eq!(status, "failed", "{}", worker.log_tail());
    let codes: Vec<Option<String>> = world.query("SELECT error_code FROM jobs WHERE job_id = $1", "job-exhausted");
    assert_eq!(codes, vec![Some("JOB_RETRIES_EXHAUSTED".to_string())]);
    let messages: Vec<Option<String>> =
        world.query("SELECT error_message FROM jobs WHERE job_id = $1", "job-exhausted");
    assert!(
        messages[0].as_deref().unwrap_or("").contains("STORAGE_UNAVAILABLE"),
        "the last transient cause is named: {messages:?}"
    );
    // The broker's limit (5 returns) allows 6 deliveries: 5 requeued, the 6th failed and dead-lettered.
    let attempts: Vec<i32> = world.query("SELECT attempts FROM jobs WHERE job_id = $1", "job-exhausted");
    assert_eq!(attempts, vec![6]);
    assert_eq!(worker.metric("radsam_jobs_total{outcome=\"requeued\"}"), 5.0);
    assert_eq!(worker.metric("radsam_jobs_total{outcome=\"failed\"}"), 1.0);
    let dead = world.drain(&world.topology.dead_queue);
    assert_eq!(dead.iter().filter(|m| m["job_id"] == "job-exhausted").count(), 1, "dead-lettered once: {dead:?}");
    assert!(world.drain(&world.topology.jobs_queue).is_empty());
}

#[test]
fn a_failed_job_leaves_no_objects_behind_and_removal_stays_within_the_job() {
    let world = World::new("delete");
    // Masks an earlier attempt uploaded before its worker died: the job then fails for good (its
    // volume is gone), and nothing of it may stay in the store without a row.
    world.rt.block_on(async {
        world.storage.ensure_bucket("s3://results/").await.unwrap();
        world.storage.put("s3://results/job-orphan/spleen.nii.gz", b"x".to_vec()).await.unwrap();
    });
    let mut worker = world.worker(&[]);
    world.submit(&spleen_job("job-orphan", 13, 11).replace("s3://scans/ct/", "s3://scans/gone/"));
    world.wait_status("job-orphan", &["failed", "succeeded"], 120, &mut [&mut worker]);
    let codes: Vec<Option<String>> = world.query("SELECT error_code FROM jobs WHERE job_id = $1", "job-orphan");
    assert_eq!(codes, vec![Some("STORAGE_NOT_FOUND".to_string())]);
    let scratch = tempfile::tempdir().unwrap();
    let left = world.rt.block_on(world.storage.fetch("s3://results/job-orphan/", scratch.path()));
    assert_eq!(left.unwrap_err().code(), "STORAGE_NOT_FOUND", "the failed job's objects are removed");

    world.rt.block_on(async {
        for name in ["job-a/spleen.nii.gz", "job-a/result.json", "job-ab/spleen.nii.gz"] {
            world.storage.put(&format!("s3://results/{name}"), b"x".to_vec()).await.unwrap();
        }
        assert_eq!(world.storage.delete_prefix("s3://results/job-a").await.unwrap(), 2, "job-ab is another job");
        assert_eq!(world.storage.delete_prefix("s3://results/job-a/").await.unwrap(), 0);
        let scratch = tempfile::tempdir().unwrap();
        assert_eq!(
            world.storage.fetch("s3://results/job-a/", scratch.path()).await.unwrap_err().code(),
            "STORAGE_NOT_FOUND"
        );
        assert!(world.storage.fetch("s3://results/job-ab/spleen.nii.gz", scratch.path()).await.is_ok());
        assert_eq!(world.storage.delete_prefix("s3://results").await.unwrap_err().code(), "STORAGE_BAD_URI");
    });
}

#[test]
fn a_worker_refuses_more_attempts_than_the_queue_delivers() {
    let out = Command::new(env!("CARGO_BIN_EXE_radsam-worker"))
        .env("RADSAM_MAX_ATTEMPTS", "9")
        .env("RADSAM_DELIVERY_LIMIT", "5")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CONFIG_INVALID") && stderr.contains("RADSAM_MAX_ATTEMPTS"), "{stderr}");
}

#[test]
fn after_a_broker_restart_the_worker_reconnects_and_takes_jobs() {
    let world = World::new("broker");
    let mut worker = world.worker(&[]);
    assert_eq!(worker.metric("radsam_broker_connections_total"), 1.0);
    restart_broker();
    let deadline = Instant::now() + Duration::from_secs(90);
    while worker.metric("radsam_broker_connections_total") < 2.0 {
        assert!(Instant::now() < deadline, "no reconnection: {}", worker.log_tail());
        std::thread::sleep(Duration::from_millis(500));
    }
    world.submit(&spleen_job("job-after-restart", 13, 11));
    world.wait_status("job-after-restart", &["succeeded"], 300, &mut [&mut worker]);
}

#[test]
fn sigterm_mid_job_finishes_the_job_in_hand_then_exits() {
    let world = World::new("term");
    let mut worker = world.worker(&[]);
    let events = world.bind_events();
    world.submit(&spleen_job("job-term", 19, 0));
    world.wait_status("job-term", &["running"], 120, &mut [&mut worker]);
    let status = worker.terminate();
    assert!(status.success(), "{}", worker.log_tail());
    assert_eq!(world.status("job-term").as_deref(), Some("succeeded"), "{}", worker.log_tail());
    assert_eq!(world.drain(&events).len(), 1);
}

/// `radsam-trainer serve --once` with this world's services and a short CPU round.
fn trainer_round(world: &World, work: &Path, extra: &[&str]) -> Child {
    let exe = Path::new(env!("CARGO_BIN_EXE_radsam-worker")).with_file_name("radsam-trainer");
    assert!(exe.exists(), "{} not built (cargo test --workspace builds it)", exe.display());
    let data = radsam::assets::sample_data_dir();
    let val =
        format!("{}={}", data.join("example_ct_dicom").display(), data.join("example_seg_dicom.nii.gz").display());
    let log = std::fs::OpenOptions::new().create(true).append(true).open(work.join("trainer.log")).unwrap();
    Command::new(exe)
        .args([
            "serve",
            "--once",
            "--min-annotations",
            "1",
            "--val-pair",
            &val,
            "--val-classes",
            "label 1",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "6",
            "--batch-size",
            "2",
            "--views",
            "1",
            "--device",
            "cpu",
            "--models-uri",
            "s3://models",
        ])
        .arg("--work-dir")
        .arg(work)
        .args(extra)
        .env("DATABASE_URL", &world.database_url)
        .env("RADSAM_S3_ENDPOINT", world.s3.endpoint())
        .env("AWS_ACCESS_KEY_ID", "radsam")
        .env("AWS_SECRET_ACCESS_KEY", "radsam-secret")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

#[test]
fn accepted_annotations_train_a_version_that_workers_pick_up_and_a_worse_one_is_not_promoted() {
    let world = World::new("trainer");
    let work = tempfile::tempdir().unwrap();
    let trainer_log = || std::fs::read_to_string(work.path().join("trainer.log")).unwrap_or_default();
    let mut worker = world.worker(&[]);
    world.submit(&spleen_job("job-annotated", 19, 0));
    world.wait_status("job-annotated", &["succeeded"], 300, &mut [&mut worker]);
    let db = || radsam::db::Db::connect_lazy(&world.database_url).unwrap();
    let accept =
        |by: &str| world.rt.block_on(async { db().accept("job-annotated", "spleen", by, None, None).await.unwrap() });
    let versions = || world.rt.block_on(async { db().model_versions().await.unwrap() });
    let unused = || world.rt.block_on(async { db().unused_annotations().await.unwrap().len() });

    // One trainer at a time: while another holds the lock, a round does nothing.
    accept("dr-a");
    let holder = world.rt.block_on(async { db().try_trainer_lock().await.unwrap().expect("the lock is free") });
    assert!(trainer_round(&world, work.path(), &[]).wait().unwrap().success(), "{}", trainer_log());
    assert!(trainer_log().contains("another trainer holds the lock"), "{}", trainer_log());
    assert!(versions().iter().all(|v| v.parent_version.is_none()) && unused() == 1);
    drop(holder);

    // Round 1: one accepted annotation -> a candidate, registered and promoted (a wide margin:
    // this checks the flow, the next round checks the decision).

    assert!(trainer_round(&world, work.path(), &["--margin", "50"]).wait().unwrap().success(), "{}", trainer_log());
    let promoted: Vec<_> = versions().into_iter().filter(|v| v.promoted).collect();
    assert_eq!(promoted.len(), 1, "{}", trainer_log());
    let first = promoted[0].clone();
    assert!(
        first.version.starts_with("radsam@sha256:")
            && first.weights_uri.as_deref() == Some(&format!("s3://models/{}.safetensors", first.version)[..])
    );
    assert!(first.parent_version.as_deref().unwrap().starts_with("radsam@sha256:"));
    let eval = first.evaluation.clone().unwrap();
    assert!(
        eval["promoted"]["mean"]["volume box/mask carry"].as_f64().unwrap() > 50.0
            && eval["candidate"]["mean"]["volume box/mask carry"].is_number(),
        "{eval}"
    );
    for measure in ["volume box/box carry", "slice box", "slice point", "volume box/mask carry + 5 clicks"] {
        assert!(
            eval["candidate"]["mean"][measure].is_number() && eval["promoted"]["mean"][measure].is_number(),
            "{measure}: {eval}"
        );
    }
    assert_eq!(unused(), 0, "the round's annotations are marked used");

    // The worker loads the promoted version between jobs; the result row records it.
    world.submit(&spleen_job("job-after-training", 13, 11));
    world.wait_status("job-after-training", &["succeeded"], 300, &mut [&mut worker]);
    let made_by: Vec<String> = world.query("SELECT model_version FROM results WHERE job_id = $1", "job-after-training");
    assert_eq!(made_by, vec![first.version.clone()], "{}", worker.log_tail());

    // Round 2, made worse on purpose (a learning rate that wrecks the decoder): registered, not promoted.
    accept("dr-b");
    assert!(
        trainer_round(&world, work.path(), &["--lr", "3", "--margin", "1"]).wait().unwrap().success(),
        "{}",
        trainer_log()
    );
    let all = versions();
    let second = all
        .iter()
        .find(|v| v.parent_version.as_deref() == Some(&first.version[..]))
        .expect("round 2 registered its candidate");
    assert!(!second.promoted, "a worse candidate must not be promoted: {:?}", second.decision);
    assert!(second.decision.as_deref().unwrap().starts_with("not promoted"));
    assert_eq!(
        all.iter().filter(|v| v.promoted).map(|v| v.version.clone()).collect::<Vec<_>>(),
        vec![first.version.clone()]
    );
    assert_eq!(unused(), 0, "used by the rejected candidate too");

    // Round 3, killed mid-training: nothing registered, nothing marked; a restart carries on.
    accept("dr-c");
    let before = versions().len();
    let mut killed = trainer_round(&world, work.path(), &["--margin", "50"]);
    let deadline = Instant::now() + Duration::from_secs(300);
    while !trainer_log().contains("training examples") {
        assert!(Instant::now() < deadline && killed.try_wait().unwrap().is_none(), "{}", trainer_log());
        std::thread::sleep(Duration::from_millis(200));
    }
    unsafe { libc::kill(killed.id() as i32, libc::SIGKILL) };
    killed.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(versions().len(), before, "a killed round registers nothing");
    assert_eq!(unused(), 1, "and marks nothing used");
    assert!(trainer_round(&world, work.path(), &["--margin", "50"]).wait().unwrap().success(), "{}", trainer_log());
    assert_eq!(versions().len(), before + 1);
    assert_eq!(unused(), 0);

    // Rollback returns to the version promoted before (round 3's parent: round 1's version).
    let back = world.rt.block_on(async { db().rollback().await.unwrap() });
    assert_eq!(back.as_deref(), Some(&first.version[..]));
}

#[test]
fn a_panic_on_the_model_thread_fails_its_job_and_stops_the_worker() {
    let world = World::new("panic");
    // The panic is injected where libtorch raises (inside the model thread's task), so the test
    // does not depend on an input that panics today (a 1-voxel-wide slice did, in the resize).
    // RUST_BACKTRACE=1: even so, a panic is one log line, not a stack dump.
    let mut worker = world.worker(&[("RADSAM_FAULT_PANIC_JOB", "job-panic"), ("RUST_BACKTRACE", "1")]);
    world.submit(&spleen_job("job-panic", 13, 11));
    let deadline = Instant::now() + Duration::from_secs(120);
    let exit = loop {
        if let Some(status) = worker.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the worker kept running after the panic: {}", worker.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    };
    // Its supervisor sees a failure and restarts it; until then /healthz is down with it.
    assert_eq!(exit.code(), Some(70), "{}", worker.log_tail());
    assert!(worker.http("/healthz").is_none());

    // The job that caused it is failed once, with its code, not requeued until its retries run out.
    assert_eq!(world.status("job-panic").as_deref(), Some("failed"));
    let codes: Vec<Option<String>> = world.query("SELECT error_code FROM jobs WHERE job_id = $1", "job-panic");
    assert_eq!(codes, vec![Some("MODEL_PANIC".to_string())]);
    let messages: Vec<Option<String>> = world.query("SELECT error_message FROM jobs WHERE job_id = $1", "job-panic");
    assert!(messages[0].as_deref().unwrap().contains("injected"), "the panic's message is kept: {messages:?}");
    let attempts: Vec<i32> = world.query("SELECT attempts FROM jobs WHERE job_id = $1", "job-panic");
    assert_eq!(attempts, vec![1]);
    let dead = world.drain(&world.topology.dead_queue);
    assert_eq!(dead.iter().filter(|m| m["job_id"] == "job-panic").count(), 1, "{dead:?}");
    assert!(world.drain(&world.topology.jobs_queue).is_empty(), "not requeued");

    let log = std::fs::read_to_string(&worker.log).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("panic: RADSAM_FAULT_PANIC_JOB")).count(), 1, "{log}");
    assert!(!log.contains("stack backtrace"), "{log}");

    // The restarted worker serves the next job.
    let mut restarted = world.worker(&[("RADSAM_FAULT_PANIC_JOB", "job-panic")]);
    world.submit(&spleen_job("job-after-panic", 13, 11));
    world.wait_status("job-after-panic", &["succeeded"], 300, &mut [&mut restarted]);
}

#[test]
fn an_invalid_message_never_touches_the_job_of_its_id() {
    let world = World::new("dupid");
    let mut a = world.worker(&[]);
    let mut b = world.worker(&[]);
    let valid = spleen_job("job-dup", 19, 0);
    let mut invalid: Value = serde_json::from_str(&valid).unwrap();
    invalid["colour"] = json!("red"); // an unknown field: JOB_MALFORMED
    let invalid = invalid.to_string();
    let rejected = "SELECT error_code FROM rejected_messages WHERE job_id = $1";

    // Sent first, the invalid message is recorded as rejected; it makes no row for the job id...
    world.submit(&invalid);
    assert_eq!(world.wait_rows(rejected, "job-dup", 1, 30.0, &mut a), vec!["JOB_MALFORMED".to_string()]);
    assert_eq!(world.status("job-dup"), None);
    // What `radsam results` reads: the id's fate, as the rejected message.
    let seen = world.rt.block_on(async {
        radsam::db::Db::connect_lazy(&world.database_url).unwrap().job_status("job-dup").await.unwrap()
    });
    assert_eq!(seen, Some(("rejected".to_string(), 0, Some("JOB_MALFORMED".to_string()))));
    // ...so the valid job with that id still runs.
    world.submit(&valid);
    world.wait_status("job-dup", &["running"], 60, &mut [&mut a, &mut b]);
    // The same invalid message while the job runs: the idle worker takes it and rejects it.
    world.submit(&invalid);
    world.wait_rows(rejected, "job-dup", 2, 30.0, &mut b);
    assert_eq!(
        world.status("job-dup").as_deref(),
        Some("running"),
        "the job finished before the duplicate came: nothing tested; {}",
        a.log_tail()
    );

    world.wait_status("job-dup", &["succeeded", "failed"], 300, &mut [&mut a, &mut b]);
    assert_eq!(world.status("job-dup").as_deref(), Some("succeeded"), "{}\n---\n{}", a.log_tail(), b.log_tail());
    let attempts: Vec<i32> = world.query("SELECT attempts FROM jobs WHERE job_id = $1", "job-dup");
    assert_eq!(attempts, vec![1], "the invalid messages counted no attempt");
    let payload: Vec<Value> = world.query("SELECT payload FROM jobs WHERE job_id = $1", "job-dup");
    assert_eq!(payload, vec![serde_json::from_str::<Value>(&valid).unwrap()], "the payload is the valid job's");
    let rows: Vec<String> = world.query("SELECT mask_uri FROM results WHERE job_id = $1", "job-dup");
    assert_eq!(rows, vec!["s3://results/job-dup/spleen.nii.gz".to_string()]);
    let scratch = tempfile::tempdir().unwrap();
    assert!(world.rt.block_on(world.storage.fetch(&rows[0], scratch.path())).is_ok(), "the masks stay");
    let dead = world.drain(&world.topology.dead_queue);
    assert_eq!(dead.len(), 2, "the two invalid messages are dead-lettered: {dead:?}");
}

#[test]
fn every_bad_message_is_recorded_with_its_code_within_seconds() {
    let world = World::new("badmsg");
    // One retry: a permanent error misread as transient would still end (and fail this test) soon.
    let mut worker = world.worker(&[("RADSAM_RETRIES", "1"), ("RADSAM_MAX_SLICES", "10"), ("RUST_BACKTRACE", "1")]);
    let job = |id: &str| serde_json::from_str::<Value>(&spleen_job(id, 13, 11)).unwrap();
    let mut cases: Vec<(String, Vec<u8>, &str)> = Vec::new();
    let mut with = |id: &str, edit: &dyn Fn(&mut Value), code: &'static str| {
        let mut v = job(id);
        edit(&mut v);
        cases.push((id.to_string(), v.to_string().into_bytes(), code));
    };
    // PostgreSQL text cannot hold NUL; a newline would forge a log line; an escape sequence.
    with("bad-nul", &|v| v["correlation_id"] = json!("study\u{0}1"), "JOB_BAD_TEXT");
    with("bad-newline", &|v| v["correlation_id"] = json!("study\nFORGED-LINE level=INFO"), "JOB_BAD_TEXT");
    with("bad-uri", &|v| v["volume_uri"] = json!("s3://scans/ct/\u{1b}[2J"), "JOB_BAD_TEXT");
    // 2 MiB, most of it an id that would not fit the correlation index (and once filled the log).
    with(
        "bad-huge",
        &|v| v["correlation_id"] = json!((0..300_000).map(|i| i.to_string()).collect::<Vec<_>>().join(",")),
        "JOB_LIMIT_MESSAGE",
    );
    with(
        "bad-clicks",
        &|v| {
            v["targets"][0]["correction_clicks"] =
                json!(vec![json!({"slice": 12, "x": 300, "y": 300, "positive": true}); 101])
        },
        "JOB_LIMIT_CLICKS",
    );
    with(
        "bad-targets",
        &|v| {
            let one = v["targets"][0].clone();
            v["targets"] = Value::Array(
                (0..65)
                    .map(|i| {
                        let mut t = one.clone();
                        t["label"] = json!(format!("t{i}"));
                        t
                    })
                    .collect(),
            );
        },
        "JOB_LIMIT_TARGETS",
    );
    with("bad-slices", &|v| v["targets"][0]["boundaries"] = json!({"top": 19, "bottom": 0}), "JOB_LIMIT_SLICES"); // RADSAM_MAX_SLICES=10
    with("bad-field", &|v| v["targets"][0]["note\nFORGED-LINE"] = json!(1), "JOB_MALFORMED");
    cases.push(("bad-binary".into(), b"\x00\x01\xfe\xffnot a job\x00\x00".to_vec(), "JOB_MALFORMED"));

    for (id, body, code) in &cases {
        world.submit_bytes(id, body);
        let t = Instant::now();
        let got =
            world.wait_rows("SELECT error_code FROM rejected_messages WHERE message_id = $1", id, 1, 5.0, &mut worker);
        assert_eq!(&got, &vec![code.to_string()], "{id}");
        println!("{id}: {code} recorded in {:.2} s", t.elapsed().as_secs_f64());
    }
    let bodies: Vec<String> = world.query("SELECT body FROM rejected_messages WHERE message_id = $1", "bad-binary");
    assert!(
        bodies[0].contains("not a job") && bodies[0].contains("\\u0000"),
        "the body is kept, NUL escaped: {bodies:?}"
    );
    let ids: Vec<Option<String>> = world.query("SELECT job_id FROM rejected_messages WHERE message_id = $1", "bad-nul");
    assert_eq!(ids, vec![Some("bad-nul".to_string())], "the job id is kept beside it");

    // None made a job row; all were dead-lettered; the worker carries on.
    world.submit(&spleen_job("job-good", 13, 11));
    world.wait_status("job-good", &["succeeded"], 300, &mut [&mut worker]);
    let jobs: Vec<String> = world.query("SELECT job_id FROM jobs WHERE $1 = $1", "");
    assert_eq!(jobs, vec!["job-good".to_string()]);
    assert_eq!(world.drain(&world.topology.dead_queue).len(), cases.len());
    assert_eq!(worker.metric("radsam_jobs_total{outcome=\"rejected\"}"), cases.len() as f64);

    // The log: no forged line, no megabyte line, no control character, no backtrace.
    let log = std::fs::read_to_string(&worker.log).unwrap();
    assert!(!log.lines().any(|l| l.starts_with("FORGED-LINE")), "{log}");
    assert!(log.lines().all(|l| l.len() < 10_000), "a log line over 10 kB");
    assert!(!log.contains('\u{0}') && !log.contains("\u{1b}[2J"), "control characters reached the log");
    assert!(!log.contains("stack backtrace"));
}

#[test]
fn permanent_database_errors_are_not_retried() {
    let world = World::new("dberror");
    world.rt.block_on(async {
        let db = radsam::db::Db::connect_lazy(&world.database_url).unwrap();
        db.migrate().await.unwrap();
        // What validation now refuses, straight to PostgreSQL: an id too large for its index
        // (SQLSTATE 54000) and a NUL in a jsonb string (22P05). Waiting cannot help either.
        let huge = (0..300_000).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        for (id, correlation) in [("job-huge", huge.as_str()), ("job-nul", "a\u{0}b")] {
            // Built without validation, which would refuse both.
            let job: radsam::job::Job = serde_json::from_value(json!({
                "schema_version": 1, "job_id": id, "correlation_id": correlation, "volume_uri": "file:///x.nii.gz",
                "targets": [{"label": "liver", "initial_prompt": {"slice": 1, "box": [1, 1, 5, 5]},
                             "boundaries": {"top": 0, "bottom": 2}}]
            }))
            .unwrap();
            let message = serde_json::to_string(&job).unwrap();
            let err = db.claim(&job, &message, "test", None).await.unwrap_err();
            assert!(!err.is_transient(), "{id}: {err}");
            assert_eq!(err.code(), "DB_INVALID", "{id}: {err}");
        }
        // A rejected message with NUL bytes and the largest body is still recorded.
        let body = format!("\u{0}{}\u{0}", "x".repeat(2 << 20));
        db.reject(Some("a\u{0}b"), None, Some("m"), &body, "JOB_MALFORMED", "bad \u{0} message").await.unwrap();
        // The database down: transient, retried.
        let down = radsam::db::Db::connect_lazy("postgres://postgres@127.0.0.1:1/none").unwrap();
        assert!(down.job_status("x").await.unwrap_err().is_transient());
    });
    for (code, transient) in [
        ("08006", true),
        ("40001", true),
        ("53100", true),
        ("57P01", true),
        ("22021", false),
        ("22P05", false),
        ("23505", false),
        ("42703", false),
        ("54000", false),
    ] {
        assert_eq!(radsam::db::is_transient_sqlstate(code), transient, "{code}");
    }
}

#[test]
fn a_job_past_its_time_budget_is_failed_and_the_model_thread_is_free_for_the_next() {
    let world = World::new("timeout");
    // 4 s: the volume is read in about a second; the 20 slices take 15-30 s to encode on a CPU.
    // Its embedding cache cannot be made (a folder under a file): the worker runs uncached.
    let mut worker =
        world.worker(&[("RADSAM_JOB_TIMEOUT_SECONDS", "4"), ("RADSAM_CACHE_EMBEDDINGS", "/dev/null/embeddings")]);
    let t = Instant::now();
    world.submit(&spleen_job("job-slow", 19, 0));
    world.wait_status("job-slow", &["failed", "succeeded"], 120, &mut [&mut worker]);
    let took = t.elapsed().as_secs_f64();
    let codes: Vec<Option<String>> = world.query("SELECT error_code FROM jobs WHERE job_id = $1", "job-slow");
    assert_eq!(codes, vec![Some("JOB_TIMEOUT".to_string())], "{}", worker.log_tail());
    let messages: Vec<Option<String>> = world.query("SELECT error_message FROM jobs WHERE job_id = $1", "job-slow");
    let message = messages[0].as_deref().unwrap();
    assert!(message.contains("encoding") && message.contains("RADSAM_JOB_TIMEOUT_SECONDS"), "{message}");
    // Cut at the next batch, not at the end of the encoding.
    assert!(took < 15.0, "failed after {took:.1} s");
    let attempts: Vec<i32> = world.query("SELECT attempts FROM jobs WHERE job_id = $1", "job-slow");
    assert_eq!(attempts, vec![1], "a job over its budget is not retried");
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(
        world.rt.block_on(world.storage.fetch("s3://results/job-slow/", scratch.path())).unwrap_err().code(),
        "STORAGE_NOT_FOUND",
        "no masks of it"
    );
    // The model thread is free: the next job reaches it at once (its prompt is refused after the
    // volume is read there, before any encoding) and the worker is healthy.
    let t = Instant::now();
    let mut bad_prompt: Value = serde_json::from_str(&spleen_job("job-next", 13, 11)).unwrap();
    bad_prompt["targets"][0]["initial_prompt"]["slice"] = json!(3);
    world.submit(&bad_prompt.to_string());
    world.wait_status("job-next", &["failed", "succeeded"], 60, &mut [&mut worker]);
    let codes: Vec<Option<String>> = world.query("SELECT error_code FROM jobs WHERE job_id = $1", "job-next");
    assert_eq!(codes, vec![Some("PROMPT_SLICE_OUTSIDE_BOUNDARIES".to_string())]);
    assert!(t.elapsed().as_secs_f64() < 10.0, "the next job waited {:.1} s", t.elapsed().as_secs_f64());
    let (code, body) = worker.http("/healthz").unwrap();
    assert_eq!(code, 200, "an unusable cache folder costs time, not health: {body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    let cache = health["embedding_cache"].as_str().unwrap();
    assert!(cache.starts_with("off: ") && cache.contains("/dev/null/embeddings"), "{cache}");
    assert!(worker.log_text().contains("embedding cache off"), "said in the log too");
}

#[test]
fn a_broker_restart_mid_job_costs_a_reconnection_not_a_minute_of_retries() {
    let world = World::new("brokermid");
    let events = world.bind_events();
    let mut worker = world.worker(&[]);
    world.submit(&spleen_job("job-mid", 19, 0));
    world.wait_status("job-mid", &["running"], 60, &mut [&mut worker]);
    restart_broker();
    // The job finishes on the model thread; its event cannot go out on the dead channel, nor can
    // its delivery be acknowledged: the redelivery after the reconnection finds it final.
    world.wait_status("job-mid", &["succeeded"], 300, &mut [&mut worker]);
    let t = Instant::now();
    world.submit(&spleen_job("job-after", 13, 11));
    world.wait_status("job-after", &["succeeded"], 120, &mut [&mut worker]);
    // Three slices take a few seconds; 45 s of retries on the dead channel used to come first.
    let took = t.elapsed().as_secs_f64();
    assert!(took < 30.0, "the next job took {took:.1} s: {}", worker.log_tail());
    let log = std::fs::read_to_string(&worker.log).unwrap();
    let retries = log.lines().filter(|l| l.contains("publishing the result event failed")).count();
    assert!(retries <= 1, "{retries} retries of the event on a closed channel: {}", worker.log_tail());
    let rows: Vec<String> = world.query("SELECT label FROM results WHERE job_id = $1", "job-mid");
    assert_eq!(rows.len(), 1, "one result row");
    let attempts: Vec<i32> = world.query("SELECT attempts FROM jobs WHERE job_id = $1", "job-mid");
    assert_eq!(attempts, vec![1]);
    // The event reached the results exchange after all (republished from the stored event).
    let got = world.drain(&events);
    assert!(got.iter().any(|e| e["job_id"] == "job-mid" && e["status"] == "succeeded"), "{got:?}");
}

/// `radsam results` for jobs no worker has taken yet: where they stand in the queue and, once a
/// worker consumes it and jobs have finished, the wait to expect.
#[test]
fn results_tell_a_job_not_yet_taken_its_place_and_its_wait() {
    let world = World::new("waiting");
    let radsam = Path::new(env!("CARGO_BIN_EXE_radsam-worker")).with_file_name("radsam");
    let run = |args: &[&str]| {
        let out = Command::new(&radsam)
            .args(args)
            .env("RADSAM_AMQP_URL", AMQP)
            .env("RADSAM_QUEUE_PREFIX", &world.name)
            .env("DATABASE_URL", &world.database_url)
            .output()
            .unwrap();
        // Without --wait, a job that has not finished is an error: the line says why.
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    assert!(run(&["migrate"]).0);
    // No worker: both jobs wait, nobody consumes.
    world.submit(&spleen_job("job-w1", 13, 11));
    world.submit(&spleen_job("job-w2", 13, 11));
    let (finished, said) = run(&["results", "job-w2"]);
    assert!(!finished && said.contains("job job-w2 has not finished"), "{said}");
    assert!(said.contains("job-w2: not started, no record yet"), "{said}");
    assert!(said.contains("2 job(s) waiting in"), "{said}");
    assert!(said.contains("0 worker(s); no worker is consuming the queue"), "{said}");

    // A worker finishes both; then, while it runs a long job, the next one waits behind it.
    let mut worker = world.worker(&[]);
    world.wait_status("job-w2", &["succeeded"], 300, &mut [&mut worker]);
    world.submit(&spleen_job("job-w3", 19, 0));
    world.submit(&spleen_job("job-w4", 13, 11));
    world.wait_status("job-w3", &["running"], 120, &mut [&mut worker]);
    let (_, said) = run(&["results", "job-w4"]);
    assert!(said.contains("1 job(s) waiting in"), "{said}");
    assert!(said.contains("1 worker(s); estimated wait"), "{said}");
    assert!(said.contains("s per job / 1 worker)"), "{said}");
    // Running and finished jobs get no such line.
    assert!(!run(&["results", "job-w3"]).1.contains("not started"));
    world.wait_status("job-w4", &["succeeded"], 300, &mut [&mut worker]);
    let (finished, said) = run(&["results", "job-w4"]);
    assert!(finished && !said.contains("not started"), "{said}");
    assert!(worker.terminate().success());
}

#[test]
fn a_correction_taken_by_another_worker_reads_its_slices_from_the_s3_tier() {
    let world = World::new("s3tier");
    let (a_dir, b_dir) = (world._dir.path().join("cache-a"), world._dir.path().join("cache-b"));
    let tier = ("RADSAM_CACHE_EMBEDDINGS_S3", "s3://embeddings/tier/");
    let mut a = world.worker(&[("RADSAM_CACHE_EMBEDDINGS", a_dir.to_str().unwrap()), tier]);
    world.submit(&spleen_job("job-t", 13, 11));
    world.wait_status("job-t", &["succeeded", "failed"], 300, &mut [&mut a]);
    assert_eq!(world.status("job-t").as_deref(), Some("succeeded"), "{}", a.log_tail());
    assert_eq!(a.metric("radsam_embedding_cache_total{event=\"miss\"}"), 3.0);
    // Its three slices reach the tier (uploaded behind the job).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scratch = tempfile::tempdir().unwrap();
        let stored = world.objects("s3://embeddings/tier/", scratch.path()).len();
        if stored == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{stored} entries in the tier: {}", a.log_tail());
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(a.terminate().success());

    // Another worker, its own empty disk: the correction's slices come from the tier, none is encoded.
    let mut b = world.worker(&[("RADSAM_CACHE_EMBEDDINGS", b_dir.to_str().unwrap()), tier]);
    let fix = json!({"schema_version": 1, "job_id": "job-t-fix", "parent_job_id": "job-t",
        "targets": [{"label": "spleen", "correction_clicks": [{"slice": 12, "x": 340, "y": 310, "positive": true}]}]});
    world.submit(&fix.to_string());
    world.wait_status("job-t-fix", &["succeeded", "failed"], 120, &mut [&mut b]);
    assert_eq!(world.status("job-t-fix").as_deref(), Some("succeeded"), "{}", b.log_tail());
    assert_eq!(b.metric("radsam_embedding_cache_total{event=\"remote_hit\"}"), 3.0, "{}", b.log_tail());
    assert_eq!(b.metric("radsam_embedding_cache_total{event=\"miss\"}"), 0.0);
    let (_, health) = b.http("/healthz").unwrap();
    assert!(health.contains("s3://embeddings/tier/"), "{health}");
    assert!(b.terminate().success());
}
