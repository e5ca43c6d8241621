//! `radsam upload`: puts a local file or folder (a DICOM series) into a store, creating the
//! bucket if needed: how a volume gets into S3 for a job, here and in the sample run.

use anyhow::{Context, Result};
use radsam::storage::{Storage, StorageConfig};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct UploadArgs {
    /// A file, or a folder (uploaded with its relative paths).
    source: PathBuf,
    /// s3://bucket/key (file) or s3://bucket/prefix/ (folder).
    uri: String,
}

pub fn upload(args: UploadArgs) -> Result<()> {
    let storage = Storage::new(&StorageConfig::from_env());
    crate::services::runtime()?.block_on(async {
        storage.ensure_bucket(&args.uri).await.map_err(radsam::error::with_code)?;
        let count = if args.source.is_dir() {
            storage.put_dir(&args.uri, &args.source).await.map_err(radsam::error::with_code)?.len()
        } else {
            storage
                .put(
                    &args.uri,
                    std::fs::read(&args.source).with_context(|| format!("reading {}", args.source.display()))?,
                )
                .await
                .map_err(radsam::error::with_code)?;
            1
        };
        eprintln!("uploaded {count} file(s) to {}", args.uri);
        Ok(())
    })
}
