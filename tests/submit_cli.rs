//! `radsam submit` against the machine's RabbitMQ (scripts/services.sh): jobs from stdin as JSON
//! lines and from files, each confirmed by the broker; a batch holding one invalid job sends
//! nothing and names the job's error code.

use lapin::options::BasicGetOptions;
use std::io::Write;
use std::process::{Command, Stdio};

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn job(id: &str, prompt: &str) -> String {
    format!(
        r#"{{"schema_version": 1, "job_id": "{id}", "volume_uri": "s3://scans/ct/", "priority": 7, "targets": [{{"label": "liver", "initial_prompt": {{"slice": 3{prompt}}}, "boundaries": {{"top": 5, "bottom": 0}}}}]}}"#
    )
}

fn submit(prefix: &str, stdin: &str, files: &[&std::path::Path]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_radsam"))
        .arg("submit")
        .args(files)
        .env("RADSAM_AMQP_URL", AMQP)
        .env("RADSAM_QUEUE_PREFIX", prefix)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Takes the messages in the jobs queue: (message id, priority, body).
fn drain(queue: &str) -> Vec<(String, u8, String)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let conn =
            radsam::queue::connect(AMQP, "test").await.expect("RabbitMQ on 127.0.0.1:5672 (scripts/services.sh)");
        let ch = conn.create_channel().await.unwrap();
        let mut out = Vec::new();
        while let Some(m) = ch.basic_get(queue, BasicGetOptions { no_ack: true }).await.unwrap() {
            let p = &m.delivery.properties;
            out.push((
                p.message_id().as_ref().unwrap().to_string(),
                p.priority().unwrap(),
                String::from_utf8(m.delivery.data.clone()).unwrap(),
            ));
        }
        let _ = ch.queue_delete(queue, Default::default()).await;
        let _ = ch.queue_delete(&queue.replace(".jobs", ".jobs.dead"), Default::default()).await;
        conn.close(200, "").await.unwrap();
        out
    })
}

#[test]
fn submit_enqueues_valid_jobs_and_refuses_a_batch_with_an_invalid_one() {
    let prefix = format!("t{}_submit", std::process::id());
    let box_prompt = r#", "box": [1, 2, 30, 40]"#;
    let lines = format!("{}\n{}\n", job("job-a", box_prompt), job("job-b", box_prompt));
    let out = submit(&prefix, &lines, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "job-a\njob-b\n");

    // A file with a valid job and one without a prompt: nothing is sent.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.json");
    std::fs::File::create(&file)
        .unwrap()
        .write_all(format!("[{}, {}]", job("job-c", box_prompt), job("job-d", "")).as_bytes())
        .unwrap();
    let out = submit(&prefix, "", &[&file]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("JOB_EMPTY_PROMPT"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let got = drain(&format!("{prefix}.jobs"));
    assert_eq!(got.iter().map(|(id, p, _)| (id.as_str(), *p)).collect::<Vec<_>>(), vec![("job-a", 7), ("job-b", 7)]);
    assert!(got[0].2.contains("\"job_id\":\"job-a\""));
}

#[test]
fn submit_refuses_what_workers_would_refuse_before_sending_anything() {
    let prefix = format!("t{}_submit_refuse", std::process::id());
    let box_prompt = r#", "box": [1, 2, 30, 40]"#;
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(&job("job-x", box_prompt)).unwrap();
        edit(&mut v);
        v.to_string()
    };
    for (name, text, code) in [
        ("NUL in the correlation id", with(&|v| v["correlation_id"] = "study\u{0}1".into()), "JOB_BAD_TEXT"),
        ("newline in the correlation id", with(&|v| v["correlation_id"] = "study\nFORGED".into()), "JOB_BAD_TEXT"),
        (
            "control character in a reference URI",
            with(&|v| v["targets"][0]["reference_mask_uri"] = "s3://x/\u{7}.nii.gz".into()),
            "JOB_BAD_TEXT",
        ),
        ("2 MiB job", with(&|v| v["series_instance_uid"] = "1".repeat(2 << 20).into()), "JOB_LIMIT_MESSAGE"),
        (
            "101 clicks",
            with(&|v| {
                v["targets"][0]["correction_clicks"] =
                    vec![serde_json::json!({"slice": 3, "x": 1, "y": 1, "positive": true}); 101].into()
            }),
            "JOB_LIMIT_CLICKS",
        ),
    ] {
        // A valid job first: the batch is refused as a whole.
        let out = submit(&prefix, &format!("{}\n{text}\n", job("job-ok", box_prompt)), &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(code), "{name}: expected {code}, got {stderr}");
        assert!(
            stderr.len() < 2000 && !stderr.contains('\u{0}') && !stderr.contains("FORGED\n"),
            "{name}: the error is short and printable: {stderr:?}"
        );
    }
    // The limits are the workers' variables.
    let clicks = vec![serde_json::json!({"slice": 3, "x": 1, "y": 1, "positive": true}); 3];
    let three = with(&|v| v["targets"][0]["correction_clicks"] = clicks.clone().into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_radsam"))
        .arg("submit")
        .env("RADSAM_AMQP_URL", AMQP)
        .env("RADSAM_QUEUE_PREFIX", &prefix)
        .env("RADSAM_MAX_CLICKS", "2")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(three.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("JOB_LIMIT_CLICKS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing was sent (drain declares nothing: a queue never declared is an error, so declare it by a valid submit).
    let out = submit(&prefix, &job("job-last", box_prompt), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = drain(&format!("{prefix}.jobs"));
    assert_eq!(got.iter().map(|(id, _, _)| id.as_str()).collect::<Vec<_>>(), vec!["job-last"]);
}

#[test]
fn submit_sends_a_correction_naming_only_its_parent_and_what_changes() {
    let prefix = format!("t{}_correction", std::process::id());
    // A revision is completed by the worker from its parent: submit checks what it can without it.
    let fix = r#"{"schema_version": 1, "job_id": "job-a-r2", "parent_job_id": "job-a", "priority": 4, "correlation_id": "study-9",
        "targets": [{"label": "liver", "correction_clicks": [{"slice": 3, "x": 10, "y": 12, "positive": false}]}]}"#;
    let out = submit(&prefix, &fix.replace('\n', " "), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (bad, code) in [
        (fix.replace("\"job-a\"", "\"job-a-r2\""), "JOB_PARENT_INVALID"),
        (fix.replace("\"job-a\"", "\"../job-a\""), "JOB_PARENT_INVALID"),
        (fix.replace("study-9", "study\\u00009"), "JOB_BAD_TEXT"),
        (fix.replace("\"priority\": 4", "\"priority\": 12"), "JOB_PRIORITY"),
    ] {
        let out = submit(&prefix, &bad.replace('\n', " "), &[]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && said.contains(code), "expected {code}: {said}");
    }
    let got = drain(&format!("{prefix}.jobs"));
    assert_eq!(got.iter().map(|(id, p, _)| (id.as_str(), *p)).collect::<Vec<_>>(), vec![("job-a-r2", 4)]);
}
