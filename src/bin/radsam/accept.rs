//! `radsam accept`: records that a clinician accepted a result as is, or with an edited mask
//! (uploaded first when it is a local file); the trainer learns from these annotations.

use crate::services::ServiceArgs;
use anyhow::{Context, Result};
use radsam::error::Coded;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct AcceptArgs {
    #[command(flatten)]
    services: ServiceArgs,
    /// The job id.
    job_id: String,
    /// The target's label (organ) within the job.
    label: String,
    /// Who accepted it.
    #[arg(long)]
    by: String,
    /// An edited mask instead of the result as is: a local NIfTI file (uploaded next to the
    /// result) or an s3:// / file:// URI already in a store.
    #[arg(long)]
    edited_mask: Option<String>,
    /// Where results live (to upload a local edited mask next to them).
    #[arg(long, env = "RADSAM_RESULTS_URI", default_value = "s3://radsam-results")]
    results_uri: String,
    #[arg(long)]
    note: Option<String>,
}

pub fn accept(args: AcceptArgs) -> Result<()> {
    let rt = crate::services::runtime()?;
    let db = crate::services::db(&args.services, &rt)?;
    rt.block_on(async {
        let edited = match &args.edited_mask {
            Some(m) if !m.contains("://") => {
                let path = PathBuf::from(m);
                // Read it as a volume first: a broken file is refused before anything is stored.
                radsam::volume::Volume::open(&path, None, &Default::default())
                    .map_err(|e| anyhow::anyhow!("--edited-mask {m}: [{}] {e}", e.code()))?;
                let safe_by: String = args
                    .by
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
                    .collect();
                let uri = radsam::storage::join_uri(
                    &args.results_uri,
                    &format!("{}/edited/{}.{}.nii.gz", args.job_id, args.label, safe_by),
                );
                let storage = radsam::storage::Storage::new(&radsam::storage::StorageConfig::from_env());
                storage
                    .put(&uri, std::fs::read(&path).with_context(|| format!("reading {m}"))?)
                    .await
                    .map_err(radsam::error::with_code)?;
                Some(uri)
            }
            other => other.clone(),
        };
        let id = db
            .accept(&args.job_id, &args.label, &args.by, edited.as_deref(), args.note.as_deref())
            .await
            .map_err(radsam::error::with_code)?;
        println!(
            "annotation {id}: {} / {} {} by {}",
            args.job_id,
            args.label,
            if edited.is_some() { "edited" } else { "accepted" },
            args.by
        );
        Ok(())
    })
}
