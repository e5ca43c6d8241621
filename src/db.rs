//! The PostgreSQL side (sqlx): migrations, and every statement workers and the CLI run. A job row
//! is claimed before work starts and results are committed in one transaction that only the
//! latest claimant can make, so a redelivered or duplicated job is finished exactly once.

use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("PostgreSQL is unavailable: {0}")]
    Unavailable(String),
    #[error("migrating the schema: {0}")]
    Migrate(String),
    #[error("{0}")]
    Invalid(String),
}

impl crate::error::Coded for DbError {
    fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "DB_UNAVAILABLE",
            Self::Migrate(_) => "DB_MIGRATE",
            Self::Invalid(_) => "DB_INVALID",
        }
    }

    fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Whether PostgreSQL's SQLSTATE `code` names a condition that waiting can clear: a connection
/// exception (08), a serialisation failure or deadlock (40), insufficient resources such as a full
/// disk (53), a lock not available (55), the server shutting down or starting (57), a system I/O
/// error (58). Everything else the server answers (22 data exception such as a NUL in text, 23
/// integrity, 42 a bad statement, 54 a program limit such as an index row too large, ...) fails
/// the same way every time: retrying it only blocks the worker.
pub fn is_transient_sqlstate(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53" | "55" | "57" | "58"))
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) => match d.code() {
                Some(code) if is_transient_sqlstate(&code) => Self::Unavailable(e.to_string()),
                Some(code) => Self::Invalid(format!("{} (SQLSTATE {code})", d.message())),
                None => Self::Unavailable(e.to_string()),
            },
            // Values that cannot be encoded or decoded, and statements that name what is not
            // there, are this program's or the request's fault; I/O, TLS, the pool and the
            // protocol (a connection cut mid-message) may pass.
            sqlx::Error::Encode(_)
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::TypeNotFound { .. }
            | sqlx::Error::RowNotFound => Self::Invalid(e.to_string()),
            _ => Self::Unavailable(e.to_string()),
        }
    }
}

/// Free text into a column: NUL escaped (PostgreSQL text cannot hold it), at most `max` bytes.
fn text(s: &str, max: usize) -> String {
    crate::job::text::storable(s, max)
}

/// Longest error message and rejected body kept (a rejected message may be as large as the
/// broker allows; its head says what it was).
const MAX_MESSAGE: usize = 8 << 10;
const MAX_BODY: usize = 1 << 20;
const MAX_ID: usize = 255;

/// What claiming a job found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Go ahead; this is the job's `attempt`-th processing, of which `crashed` earlier ones ended
    /// with no outcome at all (their worker died): what counts towards JOB_POISON.
    Run { attempt: i32, crashed: i32 },
    /// Already finished (succeeded or failed): ack the message; `event` is what was published.
    Finished { status: String, event: Option<Value> },
}

/// Seconds per stage of one job.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageTimes {
    pub queue_lag: Option<f64>,
    pub fetch: f64,
    pub decode: f64,
    pub encode: f64,
    pub propagate: f64,
    pub upload: f64,
    pub commit: f64,
    pub total: f64,
}

impl StageTimes {
    /// The stages a job passes through, in order, with their seconds (radsam_stage_seconds).
    pub fn stages(&self) -> [(&'static str, f64); 6] {
        [
            ("fetch", self.fetch),
            ("decode", self.decode),
            ("encode", self.encode),
            ("propagate", self.propagate),
            ("upload", self.upload),
            ("commit", self.commit),
        ]
    }
}

/// One target's row.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRow {
    pub label: String,
    pub mask_uri: String,
    pub labels_uri: String,
    pub seg_uri: Option<String>,
    /// Where the SEG was stored in a PACS (its WADO-RS URL), when the job stored it there.
    pub pacs_seg_uri: Option<String>,
    /// The PACS stored it with a warning (STOW-RS 202 or a WarningReason): its text.
    pub pacs_store_warning: Option<String>,
    pub voxels: i64,
    pub volume_ml: f64,
    pub reference_ml: Option<f64>,
    pub dice: Option<f64>,
    pub carry: String,
    pub initial_slice: i32,
    pub first_slice: i32,
    pub last_slice: i32,
    pub clicks_applied: i32,
}

#[derive(Clone)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    /// Connects (lazily: the first statement opens the first connection, so a worker can start
    /// before PostgreSQL and retry).
    pub fn connect_lazy(url: &str) -> Result<Self, DbError> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(url)
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the migrations in migrations/ that have not run yet.
    pub async fn migrate(&self) -> Result<(), DbError> {
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => DbError::from(inner),
            other => DbError::Migrate(other.to_string()),
        })
    }

    /// Makes sure a model version has its row (results reference it).
    pub async fn register_model_version(
        &self,
        version: &str,
        model: &str,
        sha256: Option<&str>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO model_versions (version, model, sha256) VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING",
        )
        .bind(version)
        .bind(model)
        .bind(sha256)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes the job for this worker: creates its row or, when it exists and is not finished
    /// (a redelivery after a crash), counts one more attempt. A finished job is left alone.
    /// `message` is the job as it arrived (kept as the row's payload, the record of what was
    /// asked); the columns come from the parsed `job`.
    pub async fn claim(
        &self,
        job: &crate::job::Job,
        message: &str,
        worker: &str,
        queue_lag: Option<f64>,
    ) -> Result<Claim, DbError> {
        let job_id = job.job_id.as_str();
        let row = sqlx::query(
            "INSERT INTO jobs (job_id, correlation_id, volume_uri, requested_model, priority, status, attempts, worker, payload, started_at, queue_lag_s, parent_job_id)
             VALUES ($1, $2, $3, $4, $5, 'running', 1, $6, $7::jsonb, now(), $8, $9)
             ON CONFLICT (job_id) DO UPDATE SET status = 'running', attempts = jobs.attempts + 1, worker = EXCLUDED.worker,
                 started_at = now(), error_code = NULL, error_message = NULL
             WHERE jobs.status NOT IN ('succeeded', 'failed')
             RETURNING attempts, requeues",
        )
        .bind(job_id)
        .bind(job.correlation_id.as_deref())
        .bind(&job.volume_uri)
        .bind(job.model_version.as_deref())
        .bind(job.priority.min(9) as i16)
        .bind(worker)
        .bind(message)
        .bind(queue_lag)
        .bind(job.parent_job_id.as_deref())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            let (attempt, requeues): (i32, i32) = (row.get(0), row.get(1));
            return Ok(Claim::Run { attempt, crashed: attempt - 1 - requeues });
        }
        let row = sqlx::query("SELECT status, result_event FROM jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(Claim::Finished { status: row.get(0), event: row.get(1) })
    }

    /// Records a permanent failure of a claimed job (only the current claimant may).
    pub async fn fail(
        &self,
        job_id: &str,
        attempt: i32,
        code: &str,
        message: &str,
        event: &Value,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'failed', error_code = $3, error_message = $4, finished_at = now(), result_event = $5,
                 total_s = extract(epoch FROM now() - started_at)
             WHERE job_id = $1 AND attempts = $2 AND status = 'running'",
        )
        .bind(job_id)
        .bind(attempt)
        .bind(code)
        .bind(text(message, MAX_MESSAGE))
        .bind(event)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a message that is not a valid job. A job id's row belongs to the first valid claim
    /// (`claim`): an invalid message never creates, fails or overwrites one, even when it names
    /// that job's id (a duplicate with a typo must not kill the job in flight, and an invalid
    /// message sent first must not keep the valid one from running). The ids it seems to carry
    /// are kept beside it for lookups. Every text is stored escaped and bounded, so that no
    /// message, however odd, fails to leave its record.
    pub async fn reject(
        &self,
        job_id: Option<&str>,
        correlation_id: Option<&str>,
        message_id: Option<&str>,
        body: &str,
        code: &str,
        message: &str,
    ) -> Result<(), DbError> {
        sqlx::query("INSERT INTO rejected_messages (job_id, correlation_id, message_id, body, error_code, error_message) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(job_id.map(|s| text(s, MAX_ID)))
            .bind(correlation_id.map(|s| text(s, MAX_ID)))
            .bind(message_id.map(|s| text(s, MAX_ID)))
            .bind(text(body, MAX_BODY))
            .bind(code)
            .bind(text(message, MAX_MESSAGE))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Puts a claimed job back to `queued` (graceful shutdown, transient failure): the broker
    /// redelivers it.
    pub async fn release(&self, job_id: &str, attempt: i32, code: &str, message: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE jobs SET status = 'queued', requeues = requeues + 1, error_code = $3, error_message = $4 WHERE job_id = $1 AND attempts = $2 AND status = 'running'").bind(job_id).bind(attempt).bind(code).bind(text(message, MAX_MESSAGE)).execute(&self.pool).await?;
        Ok(())
    }

    /// Commits a finished job in one transaction: its targets, timings and status. Returns false
    /// (and writes nothing) when this worker is no longer the job's claimant: another delivery
    /// took it over or finished it.
    pub async fn commit(
        &self,
        job_id: &str,
        attempt: i32,
        model_version: &str,
        targets: &[TargetRow],
        times: &StageTimes,
        event: &Value,
    ) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET status = 'succeeded', finished_at = now(), model_version = $3, result_event = $4,
                 fetch_s = $5, decode_s = $6, encode_s = $7, propagate_s = $8, upload_s = $9, commit_s = $10, total_s = $11
             WHERE job_id = $1 AND attempts = $2 AND status = 'running'",
        )
        .bind(job_id)
        .bind(attempt)
        .bind(model_version)
        .bind(event)
        .bind(times.fetch)
        .bind(times.decode)
        .bind(times.encode)
        .bind(times.propagate)
        .bind(times.upload)
        .bind(times.commit)
        .bind(times.total)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for t in targets {
            sqlx::query(
                "INSERT INTO results (job_id, label, mask_uri, labels_uri, seg_uri, voxels, volume_ml, reference_ml, dice, carry, initial_slice, first_slice, last_slice, clicks_applied, model_version, pacs_seg_uri, pacs_store_warning, revision)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                     1 + coalesce((SELECT r.revision FROM results r JOIN jobs j ON r.job_id = j.parent_job_id
                                   WHERE j.job_id = $1 AND r.label = $2), 0))",
            )
            .bind(job_id)
            .bind(&t.label)
            .bind(&t.mask_uri)
            .bind(&t.labels_uri)
            .bind(&t.seg_uri)
            .bind(t.voxels)
            .bind(t.volume_ml)
            .bind(t.reference_ml)
            .bind(t.dice)
            .bind(&t.carry)
            .bind(t.initial_slice)
            .bind(t.first_slice)
            .bind(t.last_slice)
            .bind(t.clicks_applied)
            .bind(model_version)
            .bind(&t.pacs_seg_uri)
            .bind(&t.pacs_store_warning)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Stores the commit's own duration and the job's final total (after the commit).
    pub async fn record_commit_time(&self, job_id: &str, commit_s: f64, total_s: f64) -> Result<(), DbError> {
        sqlx::query("UPDATE jobs SET commit_s = $2, total_s = $3 WHERE job_id = $1")
            .bind(job_id)
            .bind(commit_s)
            .bind(total_s)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that `by` accepted a result as is (`edited_mask_uri` None) or with an edited mask.
    /// Returns the annotation id. Accepting again replaces that person's earlier annotation.
    pub async fn accept(
        &self,
        job_id: &str,
        label: &str,
        by: &str,
        edited_mask_uri: Option<&str>,
        note: Option<&str>,
    ) -> Result<i64, DbError> {
        let row = sqlx::query("SELECT r.mask_uri FROM results r JOIN jobs j USING (job_id) WHERE r.job_id = $1 AND r.label = $2 AND j.status = 'succeeded'").bind(job_id).bind(label).fetch_optional(&self.pool).await?;
        let Some(row) = row else {
            return Err(DbError::Invalid(format!("no succeeded result for job {job_id:?}, target {label:?}")));
        };
        let result_mask: String = row.get(0);
        let (kind, mask) = match edited_mask_uri {
            Some(uri) => ("edited", uri.to_string()),
            None => ("accepted", result_mask),
        };
        let row = sqlx::query(
            "INSERT INTO annotations (job_id, label, kind, mask_uri, accepted_by, note) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (job_id, label, accepted_by) DO UPDATE SET kind = EXCLUDED.kind, mask_uri = EXCLUDED.mask_uri,
                 note = EXCLUDED.note, accepted_at = now(), used_by_version = NULL
             RETURNING id",
        )
        .bind(job_id)
        .bind(label)
        .bind(kind)
        .bind(mask)
        .bind(by)
        .bind(note)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get(0))
    }

    /// Status, attempts and error of a job, if it has a row; else `rejected` with the code of the
    /// latest invalid message that carried this id, if any.
    pub async fn job_status(&self, job_id: &str) -> Result<Option<(String, i32, Option<String>)>, DbError> {
        let row = sqlx::query("SELECT status, attempts, error_code FROM jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(r) = row {
            return Ok(Some((r.get(0), r.get(1), r.get(2))));
        }
        let row = sqlx::query("SELECT error_code FROM rejected_messages WHERE job_id = $1 ORDER BY id DESC LIMIT 1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| ("rejected".to_string(), 0, r.get(0))))
    }

    /// Mean seconds (delivery to commit) of the last 100 jobs that succeeded, if any: what a job
    /// waiting in the queue can expect of each one ahead of it.
    pub async fn mean_job_seconds(&self) -> Result<Option<f64>, DbError> {
        let row = sqlx::query(
            "SELECT avg(total_s) FROM (SELECT total_s FROM jobs WHERE status = 'succeeded' AND total_s IS NOT NULL
             ORDER BY finished_at DESC NULLS LAST LIMIT 100) recent",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get(0))
    }

    /// The per-organ rows of the given jobs (all jobs when empty), as the organ_volumes view has them.
    /// The status and stored job (complete: a revision is stored completed) of `job_id`, if
    /// there is such a job: what a correction naming it as its parent is completed from.
    pub async fn job_payload(&self, job_id: &str) -> Result<Option<(String, Value)>, DbError> {
        let row = sqlx::query("SELECT status, payload FROM jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// A finished job's results as a revision reuses them: (label, mask URI, model version).
    pub async fn result_masks(&self, job_id: &str) -> Result<Vec<(String, String, String)>, DbError> {
        let rows = sqlx::query("SELECT label, mask_uri, model_version FROM results WHERE job_id = $1")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// The chain of revisions that ends at `job_id`: each target's results from the first job
    /// down to this one, oldest first (a job's own results follow its parent's).
    pub async fn history(&self, job_id: &str) -> Result<Vec<Revision>, DbError> {
        let rows = sqlx::query(
            "WITH RECURSIVE chain(job_id, parent_job_id, depth) AS (
                 SELECT job_id, parent_job_id, 0 FROM jobs WHERE job_id = $1
                 UNION ALL
                 SELECT j.job_id, j.parent_job_id, c.depth + 1 FROM jobs j JOIN chain c ON j.job_id = c.parent_job_id
                 WHERE c.depth < 10000
             )
             SELECT c.job_id, c.parent_job_id, r.label, r.revision, r.clicks_applied, r.volume_ml, r.dice, r.mask_uri,
                    to_char(j.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
             FROM chain c JOIN results r ON r.job_id = c.job_id JOIN jobs j ON j.job_id = c.job_id
             ORDER BY r.label, c.depth DESC",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Revision {
                job_id: r.get(0),
                parent_job_id: r.get(1),
                label: r.get(2),
                revision: r.get(3),
                clicks_applied: r.get(4),
                volume_ml: r.get(5),
                dice: r.get(6),
                mask_uri: r.get(7),
                finished_at: r.get::<Option<String>, _>(8).unwrap_or_default(),
            })
            .collect())
    }

    pub async fn organ_volumes(&self, job_ids: &[String]) -> Result<Vec<OrganVolume>, DbError> {
        let rows = sqlx::query(
            "SELECT job_id, coalesce(study, ''), organ, volume_ml, voxels, dice, model_version, mask_uri, pacs_seg_uri
             FROM organ_volumes
             WHERE cardinality($1::text[]) = 0 OR job_id = ANY($1) ORDER BY study, job_id, organ",
        )
        .bind(job_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| OrganVolume {
                job_id: r.get(0),
                study: r.get(1),
                organ: r.get(2),
                volume_ml: r.get(3),
                voxels: r.get(4),
                dice: r.get(5),
                model_version: r.get(6),
                mask_uri: r.get(7),
                pacs_seg_uri: r.get(8),
            })
            .collect())
    }
}

/// One revision of one target: a row of `radsam results --history`.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    pub job_id: String,
    pub parent_job_id: Option<String>,
    pub label: String,
    pub revision: i32,
    pub clicks_applied: i32,
    pub volume_ml: f64,
    pub dice: Option<f64>,
    pub mask_uri: String,
    pub finished_at: String,
}

/// A row of the organ_volumes view.
#[derive(Debug, Clone, Serialize)]
pub struct OrganVolume {
    pub job_id: String,
    pub study: String,
    pub organ: String,
    pub volume_ml: f64,
    pub voxels: i64,
    pub dice: Option<f64>,
    pub model_version: String,
    pub mask_uri: String,
    /// Where the job's SEG was stored in a PACS (WADO-RS), if it was.
    pub pacs_seg_uri: Option<String>,
}
