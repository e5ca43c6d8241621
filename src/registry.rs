//! The model registry in PostgreSQL: versions (weights in S3, parent, settings, evaluations), the
//! one promoted version workers load, the annotations a training round used, and the advisory lock
//! that keeps a single trainer at work. A candidate is registered and its annotations marked used
//! in one transaction, so a trainer killed at any point leaves either both or neither.

use crate::db::{Db, DbError};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

/// The key of the trainer's advisory lock ("RadSAMtr").
const TRAINER_LOCK: i64 = 0x5261_6453_414d_7472;

#[derive(Debug, Clone, Serialize)]
pub struct ModelVersion {
    pub version: String,
    pub model: String,
    pub weights_uri: Option<String>,
    pub parent_version: Option<String>,
    pub promoted: bool,
    pub annotations_used: i32,
    pub evaluation: Option<Value>,
    pub decision: Option<String>,
    pub created: String,
}

/// An accepted annotation no version has used yet, with what is needed to train on it.
#[derive(Debug, Clone)]
pub struct Annotation {
    pub id: i64,
    pub label: String,
    pub mask_uri: String,
    pub volume_uri: String,
    pub series_instance_uid: Option<String>,
}

/// A candidate to register.
pub struct Candidate<'a> {
    pub version: &'a str,
    pub model: &'a str,
    pub sha256: &'a str,
    pub weights_uri: &'a str,
    pub parent_version: Option<&'a str>,
    pub settings: &'a Value,
    pub evaluation: &'a Value,
    pub promote: bool,
    pub decision: &'a str,
    pub annotation_ids: &'a [i64],
}

/// Holds the trainer lock for as long as it lives (a session lock on its own connection; the
/// server releases it when that connection dies with a killed trainer).
pub struct TrainerLock {
    _connection: sqlx::PgConnection,
}

fn row_to_version(r: &sqlx::postgres::PgRow) -> ModelVersion {
    ModelVersion {
        version: r.get("version"),
        model: r.get("model"),
        weights_uri: r.get("weights_uri"),
        parent_version: r.get("parent_version"),
        promoted: r.get("promoted"),
        annotations_used: r.get("annotations_used"),
        evaluation: r.get("evaluation"),
        decision: r.get("decision"),
        created: r.get("created"),
    }
}

const VERSION_COLUMNS: &str = "version, model, weights_uri, parent_version, promoted, annotations_used, evaluation, decision, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS') AS created";

impl Db {
    /// Takes the trainer lock if no other trainer holds it.
    pub async fn try_trainer_lock(&self) -> Result<Option<TrainerLock>, DbError> {
        let mut connection = self.pool().acquire().await?;
        let got: bool =
            sqlx::query("SELECT pg_try_advisory_lock($1)").bind(TRAINER_LOCK).fetch_one(&mut *connection).await?.get(0);
        Ok(got.then(|| TrainerLock { _connection: connection.detach() }))
    }

    /// The promoted version, if any.
    pub async fn promoted_version(&self) -> Result<Option<ModelVersion>, DbError> {
        let row = sqlx::query(&format!("SELECT {VERSION_COLUMNS} FROM model_versions WHERE promoted"))
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(row_to_version))
    }

    /// One version by its name (what a job's `model_version` asks for).
    pub async fn model_version(&self, version: &str) -> Result<Option<ModelVersion>, DbError> {
        let row = sqlx::query(&format!("SELECT {VERSION_COLUMNS} FROM model_versions WHERE version = $1"))
            .bind(version)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(row_to_version))
    }

    pub async fn model_versions(&self) -> Result<Vec<ModelVersion>, DbError> {
        let rows = sqlx::query(&format!("SELECT {VERSION_COLUMNS} FROM model_versions ORDER BY created_at, version"))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row_to_version).collect())
    }

    /// Accepted annotations that no version has used, oldest first.
    pub async fn unused_annotations(&self) -> Result<Vec<Annotation>, DbError> {
        let rows = sqlx::query(
            "SELECT a.id, a.label, a.mask_uri, j.payload->>'volume_uri' AS volume_uri, j.payload->>'series_instance_uid' AS series
             FROM annotations a JOIN jobs j USING (job_id) WHERE a.used_by_version IS NULL ORDER BY a.id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Annotation {
                id: r.get(0),
                label: r.get(1),
                mask_uri: r.get(2),
                volume_uri: r.get::<Option<String>, _>(3).unwrap_or_default(),
                series_instance_uid: r.get(4),
            })
            .collect())
    }

    /// Registers a candidate, marks its annotations used by it and, if `promote`, makes it the
    /// promoted version: all in one transaction.
    pub async fn register_candidate(&self, c: &Candidate<'_>) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        if c.promote {
            sqlx::query("UPDATE model_versions SET promoted = false WHERE promoted").execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO model_versions (version, model, sha256, weights_uri, parent_version, settings, evaluation, promoted, promoted_at, annotations_used, decision)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $8 THEN now() END, $9, $10)",
        )
        .bind(c.version)
        .bind(c.model)
        .bind(c.sha256)
        .bind(c.weights_uri)
        .bind(c.parent_version)
        .bind(c.settings)
        .bind(c.evaluation)
        .bind(c.promote)
        .bind(c.annotation_ids.len() as i32)
        .bind(c.decision)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE annotations SET used_by_version = $1 WHERE id = ANY($2) AND used_by_version IS NULL")
            .bind(c.version)
            .bind(c.annotation_ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes `version` the promoted one (it must have weights in a store, so workers can load it).
    pub async fn promote(&self, version: &str) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        let found = sqlx::query("SELECT weights_uri FROM model_versions WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
        match found {
            None => return Err(DbError::Invalid(format!("no model version {version:?} (see `radsam models`)"))),
            Some(r) if r.get::<Option<String>, _>(0).is_none() => {
                return Err(DbError::Invalid(format!(
                "{version} has no weights in a store (a worker's built-in model): nothing for other workers to load"
            )))
            }
            Some(_) => {}
        }
        sqlx::query("UPDATE model_versions SET promoted = false WHERE promoted").execute(&mut *tx).await?;
        sqlx::query("UPDATE model_versions SET promoted = true, promoted_at = now() WHERE version = $1")
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Promotes the version promoted before the current one (its parent when that has weights,
    /// else none: workers fall back to their configured model). Returns what is promoted now.
    pub async fn rollback(&self) -> Result<Option<String>, DbError> {
        let current = self
            .promoted_version()
            .await?
            .ok_or_else(|| DbError::Invalid("no version is promoted: nothing to roll back".into()))?;
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE model_versions SET promoted = false, decision = coalesce(decision, '') || ' (rolled back)' WHERE version = $1").bind(&current.version).execute(&mut *tx).await?;
        let parent = match &current.parent_version {
            Some(p) => sqlx::query("UPDATE model_versions SET promoted = true, promoted_at = now() WHERE version = $1 AND weights_uri IS NOT NULL RETURNING version").bind(p).fetch_optional(&mut *tx).await?.map(|r| r.get::<String, _>(0)),
            None => None,
        };
        tx.commit().await?;
        Ok(parent)
    }

    /// Records a round that ended without registering a version.
    pub async fn record_round(&self, annotations: usize, outcome: &str, message: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO training_rounds (annotations, outcome, message, finished_at) VALUES ($1, $2, $3, now())",
        )
        .bind(annotations as i32)
        .bind(outcome)
        .bind(message)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
