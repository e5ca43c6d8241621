//! `radsam submit`: enqueues jobs from files or stdin (one job object, an array of jobs, or one
//! job per line), each validated first and confirmed by the broker before the next.

use crate::services::ServiceArgs;
use anyhow::{bail, Context, Result};
use radsam::error::Coded;
use radsam::job::{CorrectionHead, Job};
use std::io::Read;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    services: ServiceArgs,
    /// The workers' limits (the same variables): a job they would refuse is refused here.
    #[command(flatten)]
    limits: radsam::job::JobLimits,
    /// Job files (JSON); `-` or none reads stdin.
    files: Vec<PathBuf>,
}

/// The jobs in one text: a job, an array of jobs, or a stream of jobs (JSON lines, or objects
/// one after another).
fn jobs_in(text: &str, source: &str) -> Result<Vec<serde_json::Value>> {
    let mut jobs = Vec::new();
    for (i, value) in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>().enumerate() {
        match value.with_context(|| format!("{source}: value {} is not JSON", i + 1))? {
            serde_json::Value::Array(items) => jobs.extend(items),
            other => jobs.push(other),
        }
    }
    Ok(jobs)
}

pub fn submit(args: SubmitArgs) -> Result<()> {
    let mut texts = Vec::new();
    if args.files.is_empty() || args.files.iter().any(|f| f.as_os_str() == "-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        texts.push(("stdin".to_string(), s));
    }
    for f in args.files.iter().filter(|f| f.as_os_str() != "-") {
        texts.push((
            f.display().to_string(),
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        ));
    }
    // Validate everything before sending anything: a bad file stops the batch, not half of it.
    let mut jobs = Vec::new();
    for (source, text) in &texts {
        for value in jobs_in(text, source)? {
            let body = serde_json::to_string(&value)?;
            let refused = |e: radsam::job::JobError| anyhow::anyhow!("{source}: [{}] {e}", e.code());
            // The workers' checks, size and control characters included: a job they would refuse
            // (or PostgreSQL could not store) is never sent. A correction naming its parent is
            // completed by the worker; what can be checked of it without the parent is checked here.
            let head = if radsam::job::revision::parent_of(&value).is_some() {
                let c = CorrectionHead::parse(&body, &args.limits).map_err(refused)?;
                (c.job_id, c.correlation_id, c.priority)
            } else {
                let job = Job::parse(&body, &args.limits).map_err(refused)?;
                (job.job_id, job.correlation_id, job.priority)
            };
            jobs.push((head, body));
        }
    }
    if jobs.is_empty() {
        bail!("no jobs given");
    }
    let topology = radsam::queue::Topology::new(&args.services.queue_prefix, args.services.delivery_limit);
    crate::services::runtime()?.block_on(async {
        let connection = radsam::queue::connect(&args.services.amqp_url, "radsam-submit")
            .await
            .with_context(|| format!("connecting to {}", args.services.amqp_url))?;
        let channel = radsam::queue::confirm_channel(&connection).await?;
        topology.declare(&channel).await?;
        for ((job_id, correlation_id, priority), body) in &jobs {
            radsam::queue::publish_job(
                &channel,
                &topology,
                job_id,
                correlation_id.as_deref(),
                *priority,
                body.as_bytes(),
            )
            .await
            .with_context(|| format!("publishing job {job_id}"))?;
            println!("{job_id}");
        }
        let _ = connection.close(200, "done").await;
        eprintln!("submitted {} job(s) to {}", jobs.len(), topology.jobs_queue);
        Ok(())
    })
}
