//! The worker's configuration: flags, each with an environment variable (the README's
//! Configuration table lists them), and defaults that work on a development machine.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "radsam-worker",
    version,
    about = "RadSAM queue worker: segmentation jobs from RabbitMQ, masks to S3, results to PostgreSQL"
)]
pub struct Config {
    /// RabbitMQ and PostgreSQL (shared with the CLI's service commands).
    #[command(flatten)]
    pub endpoints: radsam::endpoints::ServiceEndpoints,
    /// Attempts that ended with their worker dead (no outcome recorded) after which the job is
    /// failed with JOB_POISON and dead-lettered; requeues on purpose (a store down) do not count.
    #[arg(long, env = "RADSAM_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: i32,
    /// Unacknowledged messages the broker hands this worker at once.
    #[arg(long, env = "RADSAM_PREFETCH", default_value_t = 1)]
    pub prefetch: u16,
    /// Where masks go: RESULTS_URI/JOB_ID/{LABEL.nii.gz, labels.nii.gz, seg.dcm, result.json}.
    #[arg(long, env = "RADSAM_RESULTS_URI", default_value = "s3://radsam-results")]
    pub results_uri: String,
    /// The model loaded at start (a job's model_version may ask for another).
    #[arg(long, env = "RADSAM_MODEL", default_value = "radsam")]
    pub model: String,
    /// Weights of --model (default: the model's fetched or committed weights).
    #[arg(long, env = "RADSAM_WEIGHTS")]
    pub weights: Option<PathBuf>,
    /// cpu, cuda or auto.
    #[arg(long, env = "RADSAM_DEVICE", default_value = "auto")]
    pub device: String,
    /// libtorch intra-op threads on CPU (default: libtorch's choice).
    #[arg(long, env = "RADSAM_THREADS")]
    pub threads: Option<i32>,
    /// /healthz and /metrics listen here.
    #[arg(long, env = "RADSAM_HTTP_ADDR", default_value = "127.0.0.1:9187")]
    pub http_addr: SocketAddr,
    /// Tries of a step that failed for a transient reason (store, database, broker down) before
    /// the job goes back to the queue; waits grow exponentially from 0.5 s to 10 s.
    #[arg(long, env = "RADSAM_RETRIES", default_value_t = 8)]
    pub retries: usize,
    /// After SIGTERM, how long the job in hand may run before it is returned to the queue.
    #[arg(long, env = "RADSAM_SHUTDOWN_GRACE_SECONDS", default_value_t = 300)]
    pub shutdown_grace_seconds: u64,
    /// A job's time budget in seconds, from its delivery to its masks on the model thread
    /// (fetching, reading, encoding, propagating, clicks): past it the job is failed with
    /// JOB_TIMEOUT and the worker takes the next one. 0: no budget. The default leaves a CPU
    /// worker time for a whole 1024-slice CT (about 25 minutes of encoding on 2 cores).
    #[arg(long, env = "RADSAM_JOB_TIMEOUT_SECONDS", default_value_t = 3600)]
    pub job_timeout_seconds: u64,
    /// Also upload PNG overlays of the prompted and clicked slices.
    #[arg(long, env = "RADSAM_OVERLAYS")]
    pub overlays: bool,
    /// Propagation guards (src/segment/guard.rs): a carried slice that leaks or collapses takes
    /// another of the decoder's masks, or stops the propagation; firings are in result.json.
    #[arg(long, env = "RADSAM_GUARDS")]
    pub guards: bool,
    /// The click check (src/segment/propagate.rs): a clicked slice keeps, of the decoder's four
    /// masks, one that agrees with its clicks.
    #[arg(long, env = "RADSAM_CLICK_CHECK")]
    pub click_check: bool,
    /// Correction carry (src/segment/propagate.rs): the slices re-propagated from a click are
    /// carried by the model's correction head too, not only the clicked slice.
    #[arg(long, env = "RADSAM_CORRECTION_CARRY")]
    pub correction_carry: bool,
    /// Negative erase (src/segment/negative_erase.rs): with mask carry, a negative click takes its
    /// region out of its slice's mask prompt before the slice is decoded; on by default,
    /// RADSAM_NEGATIVE_ERASE=false turns it off.
    #[arg(long, env = "RADSAM_NEGATIVE_ERASE", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub negative_erase: bool,
    /// Carry ensemble (src/segment/propagate.rs, CarryCue::Ensemble): with mask carry, each carried
    /// slice is also decoded from the previous mask's widened box and keeps the mean of the two
    /// answers. Off by default (README, Benchmarks, carry ensemble); RADSAM_CARRY_ENSEMBLE=true
    /// turns it on.
    #[arg(long, env = "RADSAM_CARRY_ENSEMBLE")]
    pub carry_ensemble: bool,
    /// Point assist (crate::model docs): a slice prompted by points alone is answered by the
    /// model's point assist when its weights hold one; on by default, RADSAM_POINT_ASSIST=false
    /// turns it off.
    #[arg(long, env = "RADSAM_POINT_ASSIST", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub point_assist: bool,
    /// Where embeddings are kept by content (segment/embedding_cache.rs), so a correction or a
    /// second job on the same slices skips the encoder: a folder (workers on one host may share
    /// it), `off` for none; default $RADSAM_CACHE/embeddings.
    #[arg(long, env = "RADSAM_CACHE_EMBEDDINGS")]
    pub embedding_cache: Option<String>,
    /// Bound of the embedding cache in MB (least recently used entries go first); 0: off.
    #[arg(long, env = "RADSAM_CACHE_EMBEDDINGS_MB", default_value_t = radsam::segment::DEFAULT_EMBEDDING_CACHE_MB)]
    pub embedding_cache_mb: u64,
    /// A second tier of the embedding cache in the S3 store (s3://bucket/prefix/), read on a local
    /// miss and written behind every local store, so any worker picks up another one's work.
    #[arg(long, env = "RADSAM_CACHE_EMBEDDINGS_S3")]
    pub embedding_cache_s3: Option<String>,
    /// Where every job's DICOM SEG is also stored with STOW-RS (a job's seg_store_uri overrides):
    /// a DICOMweb service root (dicomweb+http(s)://HOST/PATH), or `source` for the DICOMweb
    /// server a job's series came from (jobs with another volume_uri store nowhere). Unset: none.
    #[arg(long, env = "RADSAM_SEG_STORE_URI")]
    pub seg_store_uri: Option<String>,
    /// The last decoded volume is kept, up to this many MB of voxels, so a correction that follows
    /// its job on this worker skips decoding the series again; 0: off.
    #[arg(long, env = "RADSAM_VOLUME_MEMO_MB", default_value_t = radsam::job::DEFAULT_VOLUME_MEMO_BYTES >> 20)]
    pub volume_memo_mb: u64,
    /// text or json log lines.
    #[arg(long, env = "RADSAM_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// What one job may ask for (message size, targets, clicks, slices); checked before any work.
    #[command(flatten)]
    pub job_limits: radsam::job::JobLimits,
    /// Fault injection for the service tests: the job with this id panics on the model thread,
    /// as a libtorch error inside a tch call does. Never set in production.
    #[arg(long, env = "RADSAM_FAULT_PANIC_JOB", hide = true)]
    pub fault_panic_job: Option<String>,
}
