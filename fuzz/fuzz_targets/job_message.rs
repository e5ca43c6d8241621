//! Fuzzes the job message as a worker receives it: any bytes, decoded as the worker decodes a
//! delivery (lossy UTF-8), through `Job::parse` under the default limits. A message must give a
//! job or a typed error with a stable code, never a panic or a hang; a job it accepts must hold
//! no control character in any text that reaches a log line or PostgreSQL, keep a key-safe id,
//! stay within the limits, and survive a round trip through JSON (what the worker stores is
//! what it ran). The two sanitisers that carry rejected bodies into logs and PostgreSQL
//! must never let a control character (logs) or a NUL (PostgreSQL) through.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radsam::error::Coded;
use radsam::job::text::{printable, storable};
use radsam::job::{Job, JobLimits};

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let limits = JobLimits::default();
    match Job::parse(&body, &limits) {
        Ok(job) => {
            assert!(job.job_id.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c)));
            let texts = [
                job.correlation_id.as_deref(),
                Some(job.volume_uri.as_str()),
                job.series_instance_uid.as_deref(),
                job.model_version.as_deref(),
            ];
            assert!(texts.iter().flatten().all(|t| !t.chars().any(char::is_control)));
            assert!(!job.targets.is_empty() && job.targets.len() <= limits.max_targets);
            assert!(job.targets.iter().all(|t| t.correction_clicks.len() <= limits.max_clicks));
            // Floats may move by one ulp through serde_json's fast parser: compare what is not a float.
            let again = Job::parse(&serde_json::to_string(&job).unwrap(), &limits).expect("a valid job re-parses");
            assert_eq!(
                (&again.job_id, &again.correlation_id, &again.volume_uri),
                (&job.job_id, &job.correlation_id, &job.volume_uri)
            );
            assert!(again.targets.iter().zip(&job.targets).all(|(a, b)| a.label == b.label
                && a.boundaries == b.boundaries
                && a.correction_clicks.len() == b.correction_clicks.len()));
        }
        Err(e) => assert!(e.code().starts_with("JOB_")),
    }
    assert!(!printable(&body, 4096).chars().any(char::is_control));
    assert!(!storable(&body, 4096).contains('\0'));
});
