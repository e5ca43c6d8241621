//! `radsam models` lists the model registry with each version's evaluation; `radsam promote`
//! makes a version the one workers load (between jobs); `radsam rollback` returns to the version
//! promoted before.

use crate::services::ServiceArgs;
use anyhow::Result;
use radsam::evaluate::{ValidationMeasure, ValidationResult};

#[derive(clap::Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    services: ServiceArgs,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    services: ServiceArgs,
    /// The version to promote (see `radsam models`).
    version: String,
}

#[derive(clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    services: ServiceArgs,
}

pub fn models(args: ModelsArgs) -> Result<()> {
    let rt = crate::services::runtime()?;
    let db = crate::services::db(&args.services, &rt)?;
    let versions = rt.block_on(db.model_versions()).map_err(radsam::error::with_code)?;
    if args.json {
        for v in &versions {
            println!("{}", serde_json::to_string(v)?);
        }
        return Ok(());
    }
    // The trainer service's evaluation of a candidate: the promoted model's and the candidate's
    // validation (radsam::evaluate::ValidationResult), compared on mask-carry Dice.
    let measure = |v: &radsam::registry::ModelVersion, which: &str| {
        v.evaluation
            .as_ref()
            .and_then(|e| serde_json::from_value::<ValidationResult>(e[which].clone()).ok())
            .and_then(|r| r.mean.get(&ValidationMeasure::VolumeBoxMaskCarry).copied())
            .map(|d| format!("{d:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    let width = versions.iter().map(|v| v.version.len()).max().unwrap_or(7).max(7);
    println!(
        "  {:<width$}  {:<19}  {:>5}  {:>9}  {:>9}  parent / decision",
        "version", "created", "notes", "Dice", "vs parent"
    );
    for v in &versions {
        let mark = if v.promoted { "*" } else { " " };
        let parent = v.parent_version.as_deref().unwrap_or("-");
        let decision =
            v.decision.as_deref().unwrap_or(if v.weights_uri.is_none() { "built-in weights of a worker" } else { "" });
        println!(
            "{mark} {:<width$}  {:<19}  {:>5}  {:>9}  {:>9}  {parent} / {decision}",
            v.version,
            v.created,
            v.annotations_used,
            measure(v, "candidate"),
            measure(v, "promoted")
        );
    }
    eprintln!("* promoted (workers load it between jobs); Dice: validation, volume-level mask carry, mean %");
    Ok(())
}

pub fn promote(args: PromoteArgs) -> Result<()> {
    let rt = crate::services::runtime()?;
    let db = crate::services::db(&args.services, &rt)?;
    rt.block_on(db.promote(&args.version)).map_err(radsam::error::with_code)?;
    println!("promoted {}", args.version);
    Ok(())
}

pub fn rollback(args: RollbackArgs) -> Result<()> {
    let rt = crate::services::runtime()?;
    let db = crate::services::db(&args.services, &rt)?;
    match rt.block_on(db.rollback()).map_err(radsam::error::with_code)? {
        Some(v) => println!("promoted {v} again"),
        None => println!("no version is promoted now: workers use their configured model"),
    }
    Ok(())
}
