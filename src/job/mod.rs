//! Jobs: the schema (what is asked), revisions (a correction completed from the job it corrects),
//! the processing function (job -> masks and results), and staged output writing. The CLI and the queue worker share all three.

mod output;
mod process;
pub mod revision;
mod schema;
pub mod text;
mod volume_memo;

pub use output::Staging;
pub use process::{process, JobResult, ProcessError, ProcessOptions, TargetResult};
pub use schema::{
    local_path, read_job, Boundaries, CorrectionHead, InitialPrompt, Job, JobError, JobLimits, Mode, Target,
    SCHEMA_VERSION,
};
pub use volume_memo::{VolumeMemo, DEFAULT_VOLUME_MEMO_BYTES};
