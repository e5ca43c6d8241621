//! `radsam-trainer serve`: the periodic fine-tuning service. Every interval, under a PostgreSQL
//! advisory lock (one trainer at a time), it reads the accepted annotations no version has used;
//! with at least N of them it fetches their volumes and masks from S3, fine-tunes from the promoted
//! model with `radsam-trainer train` (a child process, so a crash or a kill leaves a checkpoint
//! the next round resumes from), reads both evaluations of that run (the promoted model before
//! training and the candidate after, on the same fixed validation set), uploads the candidate's
//! weights under its version, and registers it in one transaction that also marks the
//! annotations used; it is promoted only if it is not worse than the promoted model by more than
//! the margin.

use anyhow::{bail, Context, Result};
use radsam::db::Db;

use radsam::error::Coded;
use radsam::evaluate::{ValidationMeasure, ValidationResult};
use radsam::registry::Candidate;
use radsam::storage::{join_uri, Storage, StorageConfig};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{info, warn};

#[derive(clap::Args, Clone)]
pub struct ServeArgs {
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/radsam")]
    database_url: String,
    /// Seconds between rounds.
    #[arg(long, env = "RADSAM_TRAIN_INTERVAL_SECONDS", default_value_t = 3600)]
    interval_seconds: u64,
    /// Unused accepted annotations needed to start a round.
    #[arg(long, env = "RADSAM_TRAIN_MIN_ANNOTATIONS", default_value_t = 10)]
    min_annotations: usize,
    /// A candidate is promoted unless its validation Dice (volume-level, mask carry) is below the
    /// promoted model's by more than this many points.
    #[arg(long, env = "RADSAM_TRAIN_MARGIN", default_value_t = 1.0)]
    margin: f64,
    /// Where versions' weights go: MODELS_URI/<version>.safetensors.
    #[arg(long, env = "RADSAM_MODELS_URI", default_value = "s3://radsam-models")]
    models_uri: String,
    /// The model fine-tuned when no version is promoted yet (its committed or fetched weights).
    #[arg(long, env = "RADSAM_MODEL", default_value = "radsam")]
    base_model: String,
    /// The fixed validation set: IMAGE=LABELS pairs (local paths), never trained on.
    #[arg(long = "val-pair", required = true)]
    val_pairs: Vec<String>,
    /// Validation classes by name ("label 5" for an unnamed label map); default every class big enough.
    #[arg(long, value_delimiter = ',')]
    val_classes: Vec<String>,
    /// Where rounds keep their data and runs (a killed round resumes from here).
    #[arg(long, env = "RADSAM_TRAIN_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// Training settings of a round (see `radsam-trainer train --help`).
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    #[arg(long, default_value_t = 50)]
    steps_per_epoch: usize,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 2)]
    views: usize,
    #[arg(long, default_value_t = 5e-5)]
    lr: f64,
    #[arg(long, default_value_t = 2)]
    max_clicks: usize,
    #[arg(long, env = "RADSAM_DEVICE", default_value = "auto")]
    device: String,
    #[arg(long, env = "RADSAM_THREADS")]
    threads: Option<i32>,
    /// Run one round (or find nothing to do) and exit.
    #[arg(long)]
    once: bool,
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn,aws=warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let db = Db::connect_lazy(&args.database_url).map_err(radsam::error::with_code)?;
        db.migrate().await.map_err(radsam::error::with_code)?;
        let storage = Storage::new(&StorageConfig::from_env());
        loop {
            match round(&args, &db, &storage).await {
                Ok(outcome) => info!("round: {outcome}"),
                Err(e) if args.once => return Err(e),
                Err(e) => warn!("round failed: {e:#}"),
            }
            if args.once {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(args.interval_seconds)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    })
}

/// What the decision compares: mean Dice of volume-level prompting with mask carry.
const DECISION_MEASURE: ValidationMeasure = ValidationMeasure::VolumeBoxMaskCarry;

async fn round(args: &ServeArgs, db: &Db, storage: &Storage) -> Result<String> {
    let Some(_lock) = db.try_trainer_lock().await.map_err(radsam::error::with_code)? else {
        return Ok("another trainer holds the lock; nothing done".into());
    };
    let annotations = db.unused_annotations().await.map_err(radsam::error::with_code)?;
    if annotations.len() < args.min_annotations {
        return Ok(format!("{} unused annotation(s), {} needed; waiting", annotations.len(), args.min_annotations));
    }
    let ids: Vec<i64> = annotations.iter().map(|a| a.id).collect();
    // A round is named by its annotations: a killed round restarts in the same folder and resumes.
    let work = args.work_dir.clone().unwrap_or_else(|| radsam::assets::cache_dir().join("trainer"));
    let dir = work.join(format!("round-{}-{}-{}", ids[0], ids[ids.len() - 1], ids.len()));
    std::fs::create_dir_all(&dir)?;
    info!(annotations = ids.len(), dir = %dir.display(), "training round");

    // The parent: the promoted version's weights from the store, else the base model's own.
    let promoted = db.promoted_version().await.map_err(radsam::error::with_code)?;
    let (parent_version, model, parent_weights) = match &promoted {
        Some(v) => {
            let uri = v.weights_uri.clone().context("the promoted version has no weights URI")?;
            let path = storage.fetch(&uri, &dir.join("parent")).await.map_err(radsam::error::with_code)?;
            (v.version.clone(), v.model.clone(), path)
        }
        None => {
            let path = radsam::assets::weights_path(&args.base_model);
            let (version, sha) = radsam::assets::weights_version(&args.base_model, &path)
                .with_context(|| format!("base weights {}", path.display()))?;
            db.register_model_version(&version, &args.base_model, Some(&sha))
                .await
                .map_err(radsam::error::with_code)?;
            (version, args.base_model.clone(), path)
        }
    };

    // The annotations' volumes and masks.
    let mut pairs = Vec::new();
    for a in &annotations {
        let case = dir.join("data").join(a.id.to_string());
        let volume = storage
            .fetch(&a.volume_uri, &case.join("volume"))
            .await
            .map_err(|e| anyhow::anyhow!("annotation {}: [{}] {e}", a.id, e.code()))?;
        let mask = storage
            .fetch(&a.mask_uri, &case.join("mask"))
            .await
            .map_err(|e| anyhow::anyhow!("annotation {}: [{}] {e}", a.id, e.code()))?;
        pairs.push(format!("{}={}", volume.display(), mask.display()));
    }

    let candidate = dir.join("candidate.safetensors");
    let run_dir = dir.join("run");
    let settings = json!({"epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch, "batch_size": args.batch_size, "views": args.views,
        "lr": args.lr, "max_clicks": args.max_clicks, "seed": ids[0], "val_pairs": args.val_pairs, "val_classes": args.val_classes, "parent": parent_version});
    let status = train_command(args, &model, &parent_weights, &pairs, &run_dir, &candidate, ids[0] as u64)
        .status()
        .await
        .context("starting radsam-trainer train")?;
    if !status.success() {
        db.record_round(
            ids.len(),
            "training_failed",
            &format!("radsam-trainer train exited with {status}; see {}", run_dir.display()),
        )
        .await
        .map_err(radsam::error::with_code)?;
        bail!("training failed ({status}); its run folder {} is kept and resumed next round", run_dir.display());
    }

    // Both evaluations come from the same run: step 0 is the parent, the last is the candidate.
    let (before, after) = evaluations(&run_dir.join("log.jsonl"))?;
    let score = |v: &ValidationResult| v.mean.get(&DECISION_MEASURE).copied().unwrap_or(f64::NAN);
    let (parent_score, candidate_score) = (score(&before), score(&after));
    let promote = candidate_score.is_finite() && candidate_score >= parent_score - args.margin;
    let decision = format!(
        "{} ({DECISION_MEASURE}: candidate {candidate_score:.2} vs promoted {parent_score:.2}, margin {})",
        if promote { "promoted" } else { "not promoted" },
        args.margin
    );

    let (version, sha256) = radsam::assets::weights_version(&model, &candidate)?;
    let weights_uri = join_uri(&args.models_uri, &format!("{version}.safetensors"));
    storage.ensure_bucket(&weights_uri).await.map_err(radsam::error::with_code)?;
    storage.put(&weights_uri, std::fs::read(&candidate)?).await.map_err(radsam::error::with_code)?;
    let evaluation = json!({"promoted": before, "candidate": after, "measure": DECISION_MEASURE});
    db.register_candidate(&Candidate {
        version: &version,
        model: &model,
        sha256: &sha256,
        weights_uri: &weights_uri,
        parent_version: Some(&parent_version),
        settings: &settings,
        evaluation: &evaluation,
        promote,
        decision: &decision,
        annotation_ids: &ids,
    })
    .await
    .map_err(radsam::error::with_code)?;
    // Registered: the round's folder has served its purpose.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!("{version}: {decision}"))
}

fn train_command(
    args: &ServeArgs,
    model: &str,
    weights: &Path,
    pairs: &[String],
    run_dir: &Path,
    out: &Path,
    seed: u64,
) -> tokio::process::Command {
    let exe = std::env::current_exe().expect("the trainer's own path");
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("train").arg("--model").arg(model).arg("--weights").arg(weights);
    for p in pairs {
        cmd.arg("--pair").arg(p);
    }
    for v in &args.val_pairs {
        cmd.arg("--val-pair").arg(v);
    }
    if !args.val_classes.is_empty() {
        cmd.arg("--val-classes").arg(args.val_classes.join(","));
    }
    cmd.args([
        "--epochs",
        &args.epochs.to_string(),
        "--steps-per-epoch",
        &args.steps_per_epoch.to_string(),
        "--batch-size",
        &args.batch_size.to_string(),
    ])
    .args([
        "--views",
        &args.views.to_string(),
        "--lr",
        &args.lr.to_string(),
        "--max-clicks",
        &args.max_clicks.to_string(),
        "--seed",
        &seed.to_string(),
    ])
    .args(["--device", &args.device, "--checkpoint-every", "10"])
    .arg("--run-dir")
    .arg(run_dir)
    .arg("--out")
    .arg(out)
    .kill_on_drop(true);
    // The run must not outlive a killed trainer: a restarted one resumes the same run folder.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    if let Some(t) = args.threads {
        cmd.args(["--threads", &t.to_string()]);
    }
    cmd
}

/// The first and last validation of a training log.
fn evaluations(log: &Path) -> Result<(ValidationResult, ValidationResult)> {
    let text = std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let vals: Vec<ValidationResult> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|mut v| v.get_mut("validation").map(Value::take))
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: a validation line of another shape", log.display()))?;
    match (vals.first(), vals.last()) {
        (Some(a), Some(b)) if vals.len() >= 2 => Ok((a.clone(), b.clone())),
        _ => bail!("{}: fewer than two validations (before and after training)", log.display()),
    }
}
