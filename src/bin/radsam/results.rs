//! `radsam results` prints per-organ results read back from PostgreSQL (waiting for jobs to
//! finish when asked); `radsam migrate` applies the schema.

use crate::services::ServiceArgs;
use anyhow::{bail, Result};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct ResultsArgs {
    #[command(flatten)]
    services: ServiceArgs,
    /// Jobs to show (all when none).
    job_ids: Vec<String>,
    /// Wait up to this many seconds for the jobs to finish (succeeded or failed).
    #[arg(long, default_value_t = 0)]
    wait: u64,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// The chain of revisions that ends at this job (each correction and the job it corrects,
    /// back to the first), per target, oldest first.
    #[arg(long, value_name = "JOB_ID", conflicts_with = "job_ids")]
    history: Option<String>,
}

#[derive(clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    services: ServiceArgs,
}

pub fn migrate(args: MigrateArgs) -> Result<()> {
    let rt = crate::services::runtime()?;
    let db = crate::services::db(&args.services, &rt)?;
    rt.block_on(db.migrate()).map_err(radsam::error::with_code)?;
    eprintln!("schema up to date");
    Ok(())
}

pub fn results(args: ResultsArgs) -> Result<()> {
    let rt = crate::services::runtime()?;
    let db = crate::services::db(&args.services, &rt)?;
    if let Some(id) = &args.history {
        return rt.block_on(history(&db, id, args.json));
    }
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(args.wait);
        let mut failed = Vec::new();
        for id in &args.job_ids {
            loop {
                let status = db.job_status(id).await.map_err(radsam::error::with_code)?;
                match status {
                    // `rejected`: no valid job with this id arrived, only a message that failed validation.
                    Some((s, _, code)) if s == "succeeded" || s == "failed" || s == "rejected" => {
                        if s != "succeeded" {
                            failed.push(format!(
                                "{id}: {}{}",
                                code.unwrap_or_default(),
                                if s == "rejected" { " (rejected message)" } else { "" }
                            ));
                        }
                        break;
                    }
                    // A job no worker has taken yet: where it stands in the queue, and the wait.
                    _ if Instant::now() >= deadline => {
                        let queue = not_started(&args.services, &db, id).await?.unwrap_or_default();
                        bail!(
                            "job {id} has not finished (status {:?}); is a worker running? {queue}",
                            status.map(|s| s.0)
                        )
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        }
        let rows = db.organ_volumes(&args.job_ids).await.map_err(radsam::error::with_code)?;
        if args.json {
            for r in &rows {
                println!("{}", serde_json::to_string(r)?);
            }
        } else {
            let w = |f: &dyn Fn(&radsam::db::OrganVolume) -> usize, min: usize| {
                rows.iter().map(f).max().unwrap_or(0).max(min)
            };
            let (ws, wj, wo) = (w(&|r| r.study.len(), 5), w(&|r| r.job_id.len(), 3), w(&|r| r.organ.len(), 5));
            println!(
                "{:<ws$}  {:<wj$}  {:<wo$}  {:>9}  {:>6}  {}",
                "study", "job", "organ", "volume mL", "Dice", "model, mask"
            );
            for r in &rows {
                let dice = r.dice.map(|d| format!("{d:.3}")).unwrap_or_else(|| "-".into());
                let pacs = r.pacs_seg_uri.as_ref().map(|u| format!(", SEG in the PACS: {u}")).unwrap_or_default();
                println!(
                    "{:<ws$}  {:<wj$}  {:<wo$}  {:>9.1}  {:>6}  {}, {}{pacs}",
                    r.study, r.job_id, r.organ, r.volume_ml, dice, r.model_version, r.mask_uri
                );
            }
        }
        if !failed.is_empty() {
            bail!("failed job(s): {}", failed.join("; "));
        }
        Ok(())
    })
}

/// For a job no worker has taken (no row yet, or returned to the queue): a line with the queue's
/// depth, its consumers and the wait they imply (depth x the mean of recent jobs / consumers).
async fn not_started(services: &ServiceArgs, db: &radsam::db::Db, id: &str) -> Result<Option<String>> {
    let status = db.job_status(id).await.map_err(radsam::error::with_code)?;
    if !matches!(status.as_ref().map(|s| s.0.as_str()), None | Some("queued")) {
        return Ok(None);
    }
    let topology = radsam::queue::Topology::new(&services.queue_prefix, services.delivery_limit);
    let (depth, consumers) = match queue_state(&services.amqp_url, &topology.jobs_queue).await {
        Ok(state) => state,
        Err(e) => return Ok(Some(format!("{id}: not started; the queue cannot be read ({e})"))),
    };
    let mean = db.mean_job_seconds().await.map_err(radsam::error::with_code)?;
    let wait = match (consumers, mean) {
        (0, _) => "no worker is consuming the queue".to_string(),
        (_, None) => "no finished job yet to estimate the wait from".to_string(),
        (c, Some(m)) => format!(
            "estimated wait {:.0} s ({depth} x {m:.1} s per job / {c} worker{})",
            depth as f64 * m / c as f64,
            if c == 1 { "" } else { "s" }
        ),
    };
    let record =
        if status.is_none() { "no record yet (a job gets one when a worker takes it)" } else { "queued again" };
    Ok(Some(format!(
        "{id}: not started, {record}; {depth} job(s) waiting in {}, {consumers} worker(s); {wait}",
        topology.jobs_queue
    )))
}

/// The jobs queue's ready messages and consumers, as the broker reports them (a passive declare).
async fn queue_state(amqp_url: &str, queue: &str) -> Result<(u32, u32), lapin::Error> {
    let connection = radsam::queue::connect(amqp_url, "radsam-results").await?;
    let channel = connection.create_channel().await?;
    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    let q = channel.queue_declare(queue, passive, lapin::types::FieldTable::default()).await;
    let _ = connection.close(200, "done").await;
    let q = q?;
    Ok((q.message_count(), q.consumer_count()))
}

/// `radsam results --history JOB_ID`: one line per revision of each target.
async fn history(db: &radsam::db::Db, job_id: &str, json: bool) -> Result<()> {
    let rows = db.history(job_id).await.map_err(radsam::error::with_code)?;
    if rows.is_empty() {
        bail!("no results for {job_id} (not finished, failed, or no such job: `radsam results {job_id}` says which)");
    }
    if json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    println!(
        "{:<16} {:>8} {:<28} {:<28} {:>6} {:>10} {:>7}  finished (UTC)",
        "target", "revision", "job", "corrects", "clicks", "volume mL", "Dice"
    );
    for r in &rows {
        let dice = r.dice.map(|d| format!("{d:.3}")).unwrap_or_else(|| "-".into());
        let parent = r.parent_job_id.as_deref().unwrap_or("-");
        println!(
            "{:<16} {:>8} {:<28} {:<28} {:>6} {:>10.1} {:>7}  {}",
            r.label, r.revision, r.job_id, parent, r.clicks_applied, r.volume_ml, dice, r.finished_at
        );
    }
    Ok(())
}
