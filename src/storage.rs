//! Where volumes come from and masks go: `s3://bucket/key` on any S3-compatible store (path-style
//! addressing, so local stores work), `file:///path` under configured roots, or (to read a series
//! and store a SEG) a PACS by DICOMweb (`dicomweb+http(s)://`, dicomweb.rs). One interface for
//! all, so the worker never cares which; every error says whether retrying could help.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to reach the stores. `from_env` reads the documented variables (README, Configuration).
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// S3 endpoint, e.g. http://127.0.0.1:8333 (path-style). None: s3:// URIs are refused.
    pub s3_endpoint: Option<String>,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// file:// URIs must lie under one of these folders; empty: file:// is refused.
    pub file_roots: Vec<PathBuf>,
}

impl StorageConfig {
    /// RADSAM_S3_ENDPOINT (default http://127.0.0.1:8333; "none" turns S3 off), AWS_REGION
    /// (default us-east-1), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (default: the development
    /// store's radsam / radsam-secret, as compose.yaml and scripts/services.sh set), RADSAM_FILE_ROOTS
    /// (folders separated by ':').
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let endpoint = var("RADSAM_S3_ENDPOINT").unwrap_or_else(|| "http://127.0.0.1:8333".into());
        Self {
            s3_endpoint: (endpoint != "none").then_some(endpoint),
            region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
            access_key: var("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "radsam".into()),
            secret_key: var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| "radsam-secret".into()),
            file_roots: var("RADSAM_FILE_ROOTS")
                .map(|r| r.split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect())
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{uri}: {reason}")]
    BadUri { uri: String, reason: String },
    #[error("{uri}: outside the allowed file roots {roots:?} (RADSAM_FILE_ROOTS)")]
    Forbidden { uri: String, roots: Vec<PathBuf> },
    #[error("{uri}: not found")]
    NotFound { uri: String },
    #[error("{uri}: the store is unavailable: {reason}")]
    Unavailable { uri: String, reason: String },
    #[error("{uri}: {reason}")]
    Io { uri: String, reason: String },
    #[error("{uri}: more than {limit} bytes to download (RADSAM_MAX_DOWNLOAD_BYTES)")]
    TooLarge { uri: String, limit: u64 },
    #[error(transparent)]
    DicomWeb(#[from] crate::dicomweb::DicomWebError),
}

impl crate::error::Coded for StorageError {
    fn code(&self) -> &'static str {
        match self {
            Self::BadUri { .. } => "STORAGE_BAD_URI",
            Self::Forbidden { .. } => "STORAGE_FORBIDDEN",
            Self::NotFound { .. } => "STORAGE_NOT_FOUND",
            Self::Unavailable { .. } => "STORAGE_UNAVAILABLE",
            Self::Io { .. } => "STORAGE_IO",
            // The download is the volume (or its series): the same code as the reader's limits.
            Self::TooLarge { .. } => "VOLUME_TOO_LARGE",
            Self::DicomWeb(e) => e.code(),
        }
    }

    /// True when trying again later may succeed (the store is down, a local disk hiccup).
    fn is_transient(&self) -> bool {
        match self {
            Self::DicomWeb(e) => e.is_transient(),
            _ => matches!(self, Self::Unavailable { .. } | Self::Io { .. }),
        }
    }
}

/// A parsed URI.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    S3 { bucket: String, key: String },
    File(PathBuf),
}

impl Location {
    pub fn parse(uri: &str) -> Result<Self, StorageError> {
        let bad = |reason: &str| StorageError::BadUri { uri: uri.into(), reason: reason.into() };
        match uri.split_once("://") {
            Some(("s3", rest)) => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty()
                    || !bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
                {
                    return Err(bad("not a valid bucket name (lowercase letters, digits, - and .)"));
                }
                if key.split('/').any(|part| part == "..") {
                    return Err(bad("`..` in the key"));
                }
                Ok(Self::S3 { bucket: bucket.into(), key: key.into() })
            }
            Some(("file", rest)) if rest.starts_with('/') => Ok(Self::File(PathBuf::from(rest))),
            Some(("file", _)) => Err(bad("file:// URIs take an absolute path (file:///data/ct.nii.gz)")),
            Some((scheme, _)) => Err(bad(&format!("unsupported scheme {scheme}:// here (s3:// or file://)"))),
            None => Err(bad("expected s3://bucket/key or file:///absolute/path")),
        }
    }
}

/// The stores behind one interface.
pub struct Storage {
    s3: Option<aws_sdk_s3::Client>,
    /// DICOMweb servers (credentials from RADSAM_DICOMWEB_*).
    dicomweb: crate::dicomweb::DicomWeb,
    roots: Vec<PathBuf>,
    /// Bytes one `fetch` may download (an object, or all objects of a series prefix).
    max_download_bytes: u64,
}

/// 4 GiB: above any CT series and the largest model weights (sam_vit_h, 2.6 GB). Downloads are
/// streamed to disk, so this bounds disk use and time, not memory.
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 4 << 30;

/// `RADSAM_MAX_DOWNLOAD_BYTES` (a positive integer), else the default. A value that does not parse
/// is reported and ignored: a typo must not lift the limit.
fn max_download_bytes_from_env() -> u64 {
    match std::env::var("RADSAM_MAX_DOWNLOAD_BYTES") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("warning: RADSAM_MAX_DOWNLOAD_BYTES={v:?} is not a positive integer; using {DEFAULT_MAX_DOWNLOAD_BYTES}");
                DEFAULT_MAX_DOWNLOAD_BYTES
            }
        },
        _ => DEFAULT_MAX_DOWNLOAD_BYTES,
    }
}

/// The local path, relative to a download folder, of an object key (or the part of it below the
/// series prefix). Keys are not paths: `..`, `.`, empty segments (`//`, a leading or trailing
/// `/`: an absolute path once joined) and NUL would write outside the folder or fail, so they are
/// refused (`STORAGE_BAD_URI`) before any file is written.
pub fn key_to_relative_path(uri: &str, key: &str) -> Result<PathBuf, StorageError> {
    let bad = |why: &str| StorageError::BadUri {
        uri: uri.into(),
        reason: format!("object key part {key:?} cannot be a file name: {why}"),
    };
    if key.contains('\0') {
        return Err(bad("it holds a NUL character"));
    }
    let mut path = PathBuf::new();
    for part in key.split('/') {
        match part {
            "" => return Err(bad("empty path segment (`//`, or a leading or trailing `/`)")),
            "." | ".." => return Err(bad("`.` or `..` segment")),
            part => path.push(part),
        }
    }
    Ok(path)
}

/// Joins a base URI and a relative name with exactly one '/'.
pub fn join_uri(base: &str, name: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), name.trim_start_matches('/'))
}

impl Storage {
    pub fn new(config: &StorageConfig) -> Self {
        let s3 = config.s3_endpoint.as_ref().map(|endpoint| {
            let conf = aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(config.region.clone()))
                .endpoint_url(endpoint)
                .credentials_provider(Credentials::new(
                    &config.access_key,
                    &config.secret_key,
                    None,
                    None,
                    "radsam-env",
                ))
                .force_path_style(true)
                // Retries are the caller's (backon, with its own schedule); a dead store must fail fast.
                .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
                .timeout_config(
                    aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(3))
                        .operation_attempt_timeout(Duration::from_secs(120))
                        .build(),
                )
                .build();
            aws_sdk_s3::Client::from_conf(conf)
        });
        // Roots are compared after resolving symlinks, as the paths asked for are.
        let roots = config.file_roots.iter().map(|r| r.canonicalize().unwrap_or_else(|_| r.clone())).collect();
        let dicomweb = crate::dicomweb::DicomWeb::new(crate::dicomweb::DicomWebConfig::from_env());
        Self { s3, dicomweb, roots, max_download_bytes: max_download_bytes_from_env() }
    }

    /// The same store with another download limit (RADSAM_MAX_DOWNLOAD_BYTES sets the default).
    pub fn with_max_download_bytes(mut self, limit: u64) -> Self {
        self.max_download_bytes = limit;
        self
    }

    /// A folder named by a file:// URI must not lead out of the roots through a symlink inside
    /// it (a DICOM folder under a root holding a link to /etc): every link under `dir` is resolved
    /// and must land under a root. Real sub-folders are walked; links are not followed further.
    fn check_links_under(&self, uri: &str, dir: &Path) -> Result<(), StorageError> {
        let io = |e: std::io::Error| StorageError::Io { uri: uri.into(), reason: format!("{}: {e}", dir.display()) };
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).map_err(io)? {
                let entry = entry.map_err(io)?;
                let kind = entry.file_type().map_err(io)?;
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_symlink() {
                    let inside = entry
                        .path()
                        .canonicalize()
                        .is_ok_and(|target| self.roots.iter().any(|r| target.starts_with(r)));
                    if !inside {
                        return Err(StorageError::Forbidden {
                            uri: format!(
                                "{uri} ({} is a symbolic link leading outside the roots, or nowhere)",
                                entry.path().display()
                            ),
                            roots: self.roots.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn s3(&self, uri: &str) -> Result<&aws_sdk_s3::Client, StorageError> {
        self.s3.as_ref().ok_or_else(|| StorageError::BadUri {
            uri: uri.into(),
            reason: "no S3 endpoint is configured (RADSAM_S3_ENDPOINT)".into(),
        })
    }

    /// The local path of a file:// URI, checked against the roots. `must_exist` false lets a path
    /// that does not exist yet (an output) be checked through its nearest existing parent.
    fn local(&self, uri: &str, path: &Path, must_exist: bool) -> Result<PathBuf, StorageError> {
        let forbidden = || StorageError::Forbidden { uri: uri.into(), roots: self.roots.clone() };
        let resolved = match path.canonicalize() {
            Ok(p) => p,
            Err(_) if must_exist => return Err(StorageError::NotFound { uri: uri.into() }),
            Err(_) => {
                let mut existing = path.to_path_buf();
                let mut rest = Vec::new();
                while !existing.exists() {
                    rest.push(existing.file_name().ok_or_else(forbidden)?.to_owned());
                    if !existing.pop() {
                        return Err(forbidden());
                    }
                }
                let mut p = existing.canonicalize().map_err(|_| forbidden())?;
                p.extend(rest.iter().rev());
                p
            }
        };
        if path.components().any(|c| c == std::path::Component::ParentDir)
            || !self.roots.iter().any(|r| resolved.starts_with(r))
        {
            return Err(forbidden());
        }
        Ok(resolved)
    }

    /// Makes `uri` (a file, or a folder / key prefix ending in '/', as a DICOM series is) readable
    /// locally: file:// gives the checked path itself; s3:// is downloaded into `scratch` keeping
    /// file names; a DICOMweb series into `scratch/series`, one file per instance. Returns the
    /// local path of the file or folder.
    pub async fn fetch(&self, uri: &str, scratch: &Path) -> Result<PathBuf, StorageError> {
        if crate::dicomweb::is_dicomweb(uri) {
            let dir = scratch.join("series");
            self.dicomweb.fetch_series(uri, &dir, self.max_download_bytes).await?;
            return Ok(dir);
        }
        match Location::parse(uri)? {
            Location::File(path) => {
                let local = self.local(uri, &path, true)?;
                if local.is_dir() {
                    self.check_links_under(uri, &local)?;
                }
                Ok(local)
            }
            Location::S3 { bucket, key } => {
                let client = self.s3(uri)?;
                // What this fetch may still download, across every object of a series.
                let mut budget = self.max_download_bytes;
                if !key.is_empty() && !key.ends_with('/') {
                    let name = key_to_relative_path(uri, key.rsplit('/').next().unwrap_or("object"))?;
                    let dest = scratch.join(name);
                    match self.download(client, uri, &bucket, &key, &dest, &mut budget).await {
                        Ok(()) => return Ok(dest),
                        // No object at the key: maybe a prefix (a DICOM series written without '/').
                        Err(StorageError::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                let prefix = if key.is_empty() || key.ends_with('/') { key.clone() } else { format!("{key}/") };
                let keys = self.list(client, uri, &bucket, &prefix).await?;
                if keys.is_empty() {
                    return Err(StorageError::NotFound { uri: uri.into() });
                }
                let dir = scratch.join(key_to_relative_path(
                    uri,
                    prefix.trim_end_matches('/').rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("series"),
                )?);
                // Every key is checked before the first file is written.
                let paths = keys
                    .iter()
                    .map(|k| key_to_relative_path(uri, &k[prefix.len()..]).map(|rel| dir.join(rel)))
                    .collect::<Result<Vec<_>, _>>()?;
                for (k, dest) in keys.iter().zip(&paths) {
                    self.download(client, uri, &bucket, k, dest, &mut budget).await?;
                }
                Ok(dir)
            }
        }
    }

    /// Streams one object to `dest` (never held whole in memory), taking its size from `budget`;
    /// an object that would exceed the budget is refused (`VOLUME_TOO_LARGE`) from its announced
    /// length, or as soon as the bytes received pass it, and the partial file is removed.
    async fn download(
        &self,
        client: &aws_sdk_s3::Client,
        uri: &str,
        bucket: &str,
        key: &str,
        dest: &Path,
        budget: &mut u64,
    ) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt;
        let too_large = || StorageError::TooLarge { uri: uri.into(), limit: self.max_download_bytes };
        let mut out = client.get_object().bucket(bucket).key(key).send().await.map_err(|e| s3_error(uri, e))?;
        if out.content_length().is_some_and(|n| n.max(0) as u64 > *budget) {
            return Err(too_large());
        }
        let io = |e: std::io::Error| StorageError::Io { uri: uri.into(), reason: format!("{}: {e}", dest.display()) };
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut written = 0u64;
        let result =
            async {
                while let Some(chunk) = out.body.try_next().await.map_err(|e| StorageError::Unavailable {
                    uri: uri.into(),
                    reason: format!("reading the body: {e}"),
                })? {
                    written += chunk.len() as u64;
                    if written > *budget {
                        return Err(too_large());
                    }
                    file.write_all(&chunk).await.map_err(io)?;
                }
                file.flush().await.map_err(io)
            }
            .await;
        if result.is_err() {
            drop(file);
            let _ = tokio::fs::remove_file(dest).await;
        } else {
            *budget -= written;
        }
        result
    }

    async fn list(
        &self,
        client: &aws_sdk_s3::Client,
        uri: &str,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| s3_error(uri, e))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key()).filter(|k| !k.ends_with('/')).map(String::from));
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(keys)
    }

    /// Stores a DICOM instance (the job's SEG) into its study on the DICOMweb service `root`
    /// (dicomweb+http(s)://.../dicom-web) with STOW-RS.
    pub async fn store_dicom(
        &self,
        root: &str,
        instance: &crate::dicomweb::Instance<'_>,
    ) -> Result<crate::dicomweb::StoreReceipt, StorageError> {
        Ok(self.dicomweb.store(root, instance).await?)
    }

    /// Writes `bytes` at `uri`, replacing what is there (deterministic keys: a retried job
    /// overwrites). file:// writes a temporary file and renames it, so readers never see half a file.
    pub async fn put(&self, uri: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        match Location::parse(uri)? {
            Location::File(path) => {
                let path = self.local(uri, &path, false)?;
                let tmp = path.with_file_name(format!(
                    ".{}.partial-{}",
                    path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
                    std::process::id()
                ));
                write_file(uri, &tmp, &bytes).await?;
                tokio::fs::rename(&tmp, &path)
                    .await
                    .map_err(|e| StorageError::Io { uri: uri.into(), reason: e.to_string() })
            }
            Location::S3 { bucket, key } => {
                if key.is_empty() || key.ends_with('/') {
                    return Err(StorageError::BadUri {
                        uri: uri.into(),
                        reason: "an object needs a key that does not end in '/'".into(),
                    });
                }
                let client = self.s3(uri)?;
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(bytes))
                    .send()
                    .await
                    .map_err(|e| s3_error(uri, e))?;
                Ok(())
            }
        }
    }

    /// Uploads every file under `dir` (recursively) to `base_uri/<relative path>`; returns the URIs.
    pub async fn put_dir(&self, base_uri: &str, dir: &Path) -> Result<Vec<String>, StorageError> {
        let mut uris = Vec::new();
        for file in
            files_under(dir).map_err(|e| StorageError::Io { uri: dir.display().to_string(), reason: e.to_string() })?
        {
            let rel = file.strip_prefix(dir).expect("under dir").to_string_lossy().replace('\\', "/");
            let uri = join_uri(base_uri, &rel);
            let bytes = tokio::fs::read(&file)
                .await
                .map_err(|e| StorageError::Io { uri: file.display().to_string(), reason: e.to_string() })?;
            self.put(&uri, bytes).await?;
            uris.push(uri);
        }
        Ok(uris)
    }

    /// Deletes everything under `base_uri` (a key prefix or a folder) and returns how many files or
    /// objects went; nothing there is not an error. A whole bucket is refused.
    pub async fn delete_prefix(&self, base_uri: &str) -> Result<usize, StorageError> {
        match Location::parse(base_uri)? {
            Location::File(path) => {
                let path = self.local(base_uri, &path, false)?;
                let io = |e: std::io::Error| StorageError::Io { uri: base_uri.into(), reason: e.to_string() };
                match files_under(&path) {
                    Ok(files) => {
                        tokio::fs::remove_dir_all(&path).await.map_err(io)?;
                        Ok(files.len())
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                    Err(e) => Err(io(e)),
                }
            }
            Location::S3 { bucket, key } => {
                if key.is_empty() {
                    return Err(StorageError::BadUri {
                        uri: base_uri.into(),
                        reason: "refusing to delete a whole bucket".into(),
                    });
                }
                let prefix = if key.ends_with('/') { key } else { format!("{key}/") };
                let client = self.s3(base_uri)?;
                let keys = self.list(client, base_uri, &bucket, &prefix).await?;
                for k in &keys {
                    client.delete_object().bucket(&bucket).key(k).send().await.map_err(|e| s3_error(base_uri, e))?;
                }
                Ok(keys.len())
            }
        }
    }

    /// Creates the bucket of an s3:// URI if it does not exist (file://: nothing to do).
    pub async fn ensure_bucket(&self, uri: &str) -> Result<(), StorageError> {
        let Location::S3 { bucket, .. } = Location::parse(uri)? else { return Ok(()) };
        let client = self.s3(uri)?;
        if client.head_bucket().bucket(&bucket).send().await.is_ok() {
            return Ok(());
        }
        match client.create_bucket().bucket(&bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = format!("{:?}", e);
                if text.contains("BucketAlreadyOwnedByYou") || text.contains("BucketAlreadyExists") {
                    Ok(())
                } else {
                    Err(s3_error(uri, e))
                }
            }
        }
    }
}

async fn write_file(uri: &str, dest: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let io = |e: std::io::Error| StorageError::Io { uri: uri.into(), reason: format!("{}: {e}", dest.display()) };
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io)?;
    }
    tokio::fs::write(dest, bytes).await.map_err(io)
}

fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Sorts an SDK error into not-found (permanent) and unavailable (transient, retried).
fn s3_error<E: std::fmt::Debug, R: std::fmt::Debug>(uri: &str, e: aws_sdk_s3::error::SdkError<E, R>) -> StorageError {
    use aws_sdk_s3::error::SdkError;
    let detail = format!("{e:?}");
    match &e {
        SdkError::ServiceError(_)
            if detail.contains("NoSuchKey") || detail.contains("NoSuchBucket") || detail.contains("NotFound") =>
        {
            StorageError::NotFound { uri: uri.into() }
        }
        SdkError::ServiceError(_)
            if detail.contains("AccessDenied")
                || detail.contains("SignatureDoesNotMatch")
                || detail.contains("InvalidAccessKeyId") =>
        {
            // Credentials are configuration: retrying will not fix them, but the job is not at fault.
            StorageError::Unavailable {
                uri: uri.into(),
                reason: "access denied (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)".into(),
            }
        }
        SdkError::ServiceError(_) => {
            StorageError::Unavailable { uri: uri.into(), reason: detail.chars().take(300).collect() }
        }
        _ => StorageError::Unavailable { uri: uri.into(), reason: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Coded;

    #[test]
    fn uris_parse_and_bad_ones_get_codes() {
        assert_eq!(
            Location::parse("s3://scans/study-1/ct.nii.gz").unwrap(),
            Location::S3 { bucket: "scans".into(), key: "study-1/ct.nii.gz".into() }
        );
        assert_eq!(Location::parse("file:///data/ct.nii.gz").unwrap(), Location::File("/data/ct.nii.gz".into()));
        for bad in ["http://x/y", "/data/ct.nii.gz", "file://data/ct", "s3://Bad_Bucket/x", "s3://b/../x"] {
            assert_eq!(Location::parse(bad).unwrap_err().code(), "STORAGE_BAD_URI", "{bad}");
        }
        assert_eq!(join_uri("s3://b/results/", "/job/x.nii.gz"), "s3://b/results/job/x.nii.gz");
    }

    #[tokio::test]
    async fn file_uris_stay_under_their_roots() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("ct.nii.gz"), b"x").unwrap();
        let storage = Storage::new(&StorageConfig {
            s3_endpoint: None,
            region: "us-east-1".into(),
            access_key: String::new(),
            secret_key: String::new(),
            file_roots: vec![root.path().into()],
        });
        let uri = |p: &Path| format!("file://{}", p.display());
        let scratch = tempfile::tempdir().unwrap();
        assert_eq!(
            storage.fetch(&uri(&outside.path().join("ct.nii.gz")), scratch.path()).await.unwrap_err().code(),
            "STORAGE_FORBIDDEN"
        );
        let sneaky = format!(
            "file://{}/../{}/ct.nii.gz",
            root.path().display(),
            outside.path().file_name().unwrap().to_str().unwrap()
        );
        assert_eq!(storage.fetch(&sneaky, scratch.path()).await.unwrap_err().code(), "STORAGE_FORBIDDEN");
        assert_eq!(
            storage.fetch(&uri(&root.path().join("missing.nii.gz")), scratch.path()).await.unwrap_err().code(),
            "STORAGE_NOT_FOUND"
        );
        // A write lands atomically under the root, in folders created on the way.
        let out = root.path().join("results/job-1/liver.nii.gz");
        storage.put(&uri(&out), b"mask".to_vec()).await.unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"mask");
        assert_eq!(storage.fetch(&uri(&out), scratch.path()).await.unwrap(), out.canonicalize().unwrap());
        assert_eq!(
            storage.put(&uri(&outside.path().join("x")), b"x".to_vec()).await.unwrap_err().code(),
            "STORAGE_FORBIDDEN"
        );
        assert_eq!(
            storage.fetch("s3://b/k", scratch.path()).await.unwrap_err().code(),
            "STORAGE_BAD_URI",
            "no endpoint configured"
        );
        // A job's folder goes as a whole; a second delete finds nothing; outside the roots is refused.
        storage.put(&uri(&root.path().join("results/job-1/labels.nii.gz")), b"l".to_vec()).await.unwrap();
        assert_eq!(storage.delete_prefix(&uri(&root.path().join("results/job-1"))).await.unwrap(), 2);
        assert!(!root.path().join("results/job-1").exists() && root.path().join("results").exists());
        assert_eq!(storage.delete_prefix(&uri(&root.path().join("results/job-1"))).await.unwrap(), 0);
        assert_eq!(storage.delete_prefix(&uri(outside.path())).await.unwrap_err().code(), "STORAGE_FORBIDDEN");
        assert!(outside.path().join("ct.nii.gz").exists());
    }

    #[tokio::test]
    async fn a_link_inside_a_root_folder_must_stay_inside_the_roots() {
        let root = tempfile::tempdir().unwrap();
        let series = root.path().join("series");
        std::fs::create_dir_all(series.join("sub")).unwrap();
        std::fs::write(series.join("sub/1.dcm"), b"x").unwrap();
        std::fs::write(root.path().join("elsewhere.dcm"), b"y").unwrap();
        // A link to a file elsewhere under the root is fine.
        std::os::unix::fs::symlink(root.path().join("elsewhere.dcm"), series.join("2.dcm")).unwrap();
        let storage = Storage::new(&StorageConfig {
            s3_endpoint: None,
            region: "us-east-1".into(),
            access_key: String::new(),
            secret_key: String::new(),
            file_roots: vec![root.path().into()],
        });
        let uri = format!("file://{}", series.display());
        let scratch = tempfile::tempdir().unwrap();
        assert_eq!(storage.fetch(&uri, scratch.path()).await.unwrap(), series.canonicalize().unwrap());
        // A link to /etc, deep in a sub-folder, is refused; so is one that leads nowhere.
        std::os::unix::fs::symlink("/etc", series.join("sub/etc")).unwrap();
        let e = storage.fetch(&uri, scratch.path()).await.unwrap_err();
        assert_eq!(e.code(), "STORAGE_FORBIDDEN");
        assert!(e.to_string().contains("sub/etc"), "{e}");
        std::fs::remove_file(series.join("sub/etc")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", series.join("dangling")).unwrap();
        assert_eq!(storage.fetch(&uri, scratch.path()).await.unwrap_err().code(), "STORAGE_FORBIDDEN");
    }

    #[test]
    fn object_keys_become_paths_only_when_safe() {
        assert_eq!(key_to_relative_path("u", "sub/1.dcm").unwrap(), PathBuf::from("sub/1.dcm"));
        for bad in ["../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a/", "", "a\0b"] {
            assert_eq!(key_to_relative_path("u", bad).unwrap_err().code(), "STORAGE_BAD_URI", "{bad:?}");
        }
    }
}
