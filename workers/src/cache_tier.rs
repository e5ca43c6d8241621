//! The embedding cache's second tier in the S3 store (`RADSAM_CACHE_EMBEDDINGS_S3`): every worker
//! writes what it encoded there and reads there what its own disk lacks, so a correction finds
//! its slices whichever worker takes it. The cache (radsam::segment, embedding_cache.rs) checks
//! every entry that comes back and leaves a failing tier alone for a minute.

use radsam::error::Coded;
use radsam::segment::RemoteTier;
use radsam::storage::{join_uri, Storage, StorageError};
use std::sync::Arc;
use tracing::warn;

pub struct S3Tier {
    storage: Arc<Storage>,
    /// s3://bucket/prefix/ under which entries are named.
    base: String,
    /// The worker's runtime: the cache runs on the model thread, the store's client on tokio.
    runtime: tokio::runtime::Handle,
}

impl S3Tier {
    pub fn new(storage: Arc<Storage>, base: &str, runtime: tokio::runtime::Handle) -> Self {
        Self { storage, base: base.to_string(), runtime }
    }
}

impl std::fmt::Debug for S3Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Tier({})", self.base)
    }
}

impl RemoteTier for S3Tier {
    fn fetch(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let uri = join_uri(&self.base, name);
        let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
        match self.runtime.block_on(self.storage.fetch(&uri, scratch.path())) {
            Ok(path) => std::fs::read(path).map(Some).map_err(|e| e.to_string()),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(format!("[{}] {e}", e.code())),
        }
    }

    /// Uploads in the background: the encoding does not wait for the store.
    fn store(&self, name: &str, bytes: Vec<u8>) {
        let (storage, uri) = (self.storage.clone(), join_uri(&self.base, name));
        self.runtime.spawn(async move {
            if let Err(e) = storage.put(&uri, bytes).await {
                warn!(code = e.code(), "cannot store an embedding in the cache's S3 tier: {e}");
            }
        });
    }
}
