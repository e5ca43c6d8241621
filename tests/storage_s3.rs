//! Fetching from a real S3 store (`weed` from the venv, started here on free ports): downloads
//! are streamed to disk under a size cap (issue #18, finding 4), and object keys are checked
//! before they become paths (finding 6).

use radsam::error::Coded;
use radsam::storage::{Storage, StorageConfig};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod s3_store;

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(files_in(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn downloads_are_capped_streamed_and_keys_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = s3_store::S3Store::start(dir.path());
    let endpoint = store.endpoint();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = StorageConfig {
        s3_endpoint: Some(endpoint),
        region: "us-east-1".into(),
        access_key: "radsam".into(),
        secret_key: "radsam-secret".into(),
        file_roots: vec![],
    };
    let storage = |limit: u64| Storage::new(&config).with_max_download_bytes(limit);
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    rt.block_on(async {
        let s = storage(1 << 30);
        // The store may take a moment to accept writes after its port opens.
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(e) = s.ensure_bucket("s3://lim").await {
            assert!(Instant::now() < deadline, "bucket: {e}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        loop {
            match s.put("s3://lim/big.bin", big.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "put: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        for k in 0..3 {
            s.put(&format!("s3://lim/series/{k}.dcm"), vec![k as u8; 600 << 10]).await.unwrap();
        }
    });

    // One object over the cap: refused, nothing left in the scratch folder.
    let scratch = tempfile::tempdir().unwrap();
    let e = rt.block_on(storage(1 << 20).fetch("s3://lim/big.bin", scratch.path())).unwrap_err();
    assert_eq!(e.code(), "VOLUME_TOO_LARGE", "{e}");
    assert!(files_in(scratch.path()).is_empty(), "{:?}", files_in(scratch.path()));
    // Under the cap: the same bytes, on disk.
    let path = rt.block_on(storage(4 << 20).fetch("s3://lim/big.bin", scratch.path())).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), big);

    // A series whose objects together pass the cap (1.8 MB against 1 MiB): refused part-way.
    let scratch = tempfile::tempdir().unwrap();
    let e = rt.block_on(storage(1 << 20).fetch("s3://lim/series/", scratch.path())).unwrap_err();
    assert_eq!(e.code(), "VOLUME_TOO_LARGE", "{e}");
    let dir_ok = rt.block_on(storage(2 << 20).fetch("s3://lim/series/", scratch.path())).unwrap();
    assert_eq!(files_in(&dir_ok).len(), 3);

    // A key that, joined to the scratch folder, would be an absolute path elsewhere: `evil//<abs>`.
    let escape = tempfile::tempdir().unwrap();
    let target = escape.path().join("planted.dcm");
    let key = format!("evil/{}", target.display()); // evil/ + /tmp/... gives `//`
    let scratch = tempfile::tempdir().unwrap();
    let stored = rt.block_on(async {
        storage(1 << 30).put(&format!("s3://lim/{key}"), b"x".to_vec()).await.unwrap();
        storage(1 << 30).fetch("s3://lim/evil/", scratch.path()).await
    });
    println!("fetch of a series holding key {key:?}: {stored:?}; scratch holds {:?}", files_in(scratch.path()));
    assert!(!target.exists(), "a key wrote outside the scratch folder: {}", target.display());
    match stored {
        // The store kept the key as given: refused before any file was written.
        Err(e) => {
            assert_eq!(e.code(), "STORAGE_BAD_URI", "{e}");
            assert!(files_in(scratch.path()).is_empty());
        }
        // The store normalised `//` away: the file must then be inside the scratch folder.
        Ok(dir) => assert!(files_in(&dir).iter().all(|f| f.starts_with(scratch.path()))),
    }
}
