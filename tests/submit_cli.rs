//! `radsam submit` against the machine's RabbitMQ (scripts/services.sh): jobs from stdin as JSON
//! lines and from files, each confirmed by the broker; a batch holding one invalid job sends
//! nothing and names the job's error code.

use lapin::options::BasicGetOptions;
use std::io::Write;
use std::process::{Command, Stdio};

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn job(id: &str, prompt: &str) -> String {
    format!(r#"{{"schema_version": 1, "job_id": "{id}", "volume_uri": "s3://scans/ct/", "priority": 7, "targets": [{{"label": "liver", "initial_prompt": {{"slice": 3{prompt}}}, "boundaries": {{"top": 5, "bottom": 0}}}}]}}"#)
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
        let conn = radsam::queue::connect(AMQP, "test").await.expect("RabbitMQ on 127.0.0.1:5672 (scripts/services.sh)");
        let ch = conn.create_channel().await.unwrap();
        let mut out = Vec::new();
        while let Some(m) = ch.basic_get(queue, BasicGetOptions { no_ack: true }).await.unwrap() {
            let p = &m.delivery.properties;
            out.push((p.message_id().as_ref().unwrap().to_string(), p.priority().unwrap(), String::from_utf8(m.delivery.data.clone()).unwrap()));
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
    std::fs::File::create(&file).unwrap().write_all(format!("[{}, {}]", job("job-c", box_prompt), job("job-d", "")).as_bytes()).unwrap();
    let out = submit(&prefix, "", &[&file]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("JOB_EMPTY_PROMPT"), "{}", String::from_utf8_lossy(&out.stderr));

    let got = drain(&format!("{prefix}.jobs"));
    assert_eq!(got.iter().map(|(id, p, _)| (id.as_str(), *p)).collect::<Vec<_>>(), vec![("job-a", 7), ("job-b", 7)]);
    assert!(got[0].2.contains("\"job_id\":\"job-a\""));
}
