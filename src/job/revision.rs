//! Corrections as revisions (issue #20): a job may name the job it corrects (`parent_job_id`) and
//! give only what changes. The worker completes it from the parent's stored job before parsing
//! it, so everything downstream sees an ordinary, complete job (and stores it complete: a
//! correction of a correction finds everything in its parent).
//!
//! The rules, on the two jobs' JSON:
//! - every top-level field the child gives replaces the parent's (volume, model, priority, ...);
//!   `targets` is merged rather than replaced;
//! - a child target whose label the parent has is that target with the child's fields over it,
//!   except `correction_clicks`, which are added after the parent's: the chain of revisions is
//!   a chain of clicks, each revision one or more further corrections of the last;
//! - a child target the parent does not have is added (it must then be complete); the parent's
//!   targets the child does not name are kept as they were, so the revision is the whole job.

use serde_json::{Map, Value};

/// Why a parent cannot complete a job: stable codes (the job is recorded and dead-lettered).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParentError {
    #[error("parent job {0:?} does not exist")]
    NotFound(String),
    #[error("parent job {0:?} failed: only a finished result can be corrected")]
    Failed(String),
    #[error("parent job {id:?} is {status}: submit a correction once its parent has succeeded")]
    Unfinished { id: String, status: String },
    #[error("the correction cannot be merged with its parent: {0}")]
    Unmergeable(String),
}

impl crate::error::Coded for ParentError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "JOB_PARENT_NOT_FOUND",
            Self::Failed(_) => "JOB_PARENT_FAILED",
            Self::Unfinished { .. } => "JOB_PARENT_UNFINISHED",
            Self::Unmergeable(_) => "JOB_MALFORMED",
        }
    }
}

/// The parent a message names, if it names one (a JSON object with a string `parent_job_id`).
pub fn parent_of(message: &Value) -> Option<&str> {
    message.get("parent_job_id")?.as_str()
}

/// Checks that `parent` (its status and stored job) can be corrected, then completes `child`
/// from it (module docs).
pub fn complete(parent_id: &str, status: &str, parent: &Value, child: &Value) -> Result<Value, ParentError> {
    match status {
        "succeeded" => {}
        "failed" => return Err(ParentError::Failed(parent_id.to_string())),
        other => return Err(ParentError::Unfinished { id: parent_id.to_string(), status: other.to_string() }),
    }
    let (Some(parent), Some(child)) = (parent.as_object(), child.as_object()) else {
        return Err(ParentError::Unmergeable("a job is a JSON object".into()));
    };
    let mut out = parent.clone();
    for (key, value) in child {
        if key != "targets" {
            out.insert(key.clone(), value.clone());
        }
    }
    if let Some(targets) = child.get("targets") {
        let Some(targets) = targets.as_array() else {
            return Err(ParentError::Unmergeable("targets must be a list".into()));
        };
        let mut merged: Vec<Value> = parent.get("targets").and_then(Value::as_array).cloned().unwrap_or_default();
        for target in targets {
            let Some(fields) = target.as_object() else {
                return Err(ParentError::Unmergeable("a target is a JSON object".into()));
            };
            let label = fields.get("label").and_then(Value::as_str);
            match merged.iter_mut().find(|t| label.is_some() && t.get("label").and_then(Value::as_str) == label) {
                Some(existing) => merge_target(existing.as_object_mut().expect("stored targets are objects"), fields),
                None => merged.push(target.clone()),
            }
        }
        out.insert("targets".into(), Value::Array(merged));
    }
    Ok(Value::Object(out))
}

fn merge_target(target: &mut Map<String, Value>, child: &Map<String, Value>) {
    for (key, value) in child {
        match (key.as_str(), target.get_mut(key), value) {
            ("correction_clicks", Some(Value::Array(earlier)), Value::Array(more)) => {
                earlier.extend(more.iter().cloned())
            }
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Coded;
    use serde_json::json;

    fn parent() -> Value {
        json!({
            "schema_version": 1, "job_id": "study-7", "volume_uri": "s3://scans/ct/", "priority": 2,
            "targets": [
                {"label": "liver", "initial_prompt": {"slice": 10, "box": [1, 2, 30, 40]}, "boundaries": {"top": 4, "bottom": 16},
                 "correction_clicks": [{"slice": 6, "x": 15, "y": 25, "positive": true}]},
                {"label": "spleen", "initial_prompt": {"slice": 12, "box": [5, 5, 20, 20]}, "boundaries": {"top": 19, "bottom": 0}}
            ]
        })
    }

    #[test]
    fn a_correction_names_only_what_changes_and_its_clicks_follow_the_parents() {
        let child = json!({"job_id": "study-7-r2", "parent_job_id": "study-7",
            "targets": [{"label": "liver", "correction_clicks": [{"slice": 12, "x": 16, "y": 26, "positive": false}]}]});
        let job = complete("study-7", "succeeded", &parent(), &child).unwrap();
        assert_eq!((job["job_id"].as_str(), job["parent_job_id"].as_str()), (Some("study-7-r2"), Some("study-7")));
        assert_eq!((job["volume_uri"].as_str(), job["priority"].as_u64()), (Some("s3://scans/ct/"), Some(2)));
        let liver = &job["targets"][0];
        assert_eq!(liver["boundaries"], parent()["targets"][0]["boundaries"], "the parent's prompts are reused");
        let clicks: Vec<u64> =
            liver["correction_clicks"].as_array().unwrap().iter().map(|c| c["slice"].as_u64().unwrap()).collect();
        assert_eq!(clicks, vec![6, 12], "the parent's click, then the new one");
        assert_eq!(job["targets"][1], parent()["targets"][1], "a target the correction does not name is kept");
        // The completed job is an ordinary one.
        let parsed = crate::job::Job::from_json(&job.to_string()).unwrap();
        assert_eq!(parsed.parent_job_id.as_deref(), Some("study-7"));
    }

    #[test]
    fn what_the_child_gives_replaces_the_parents_and_new_targets_are_added() {
        let child = json!({"job_id": "r2", "parent_job_id": "study-7", "volume_uri": "s3://scans/ct-copy/",
            "targets": [{"label": "liver", "boundaries": {"top": 5, "bottom": 15}},
                        {"label": "kidney", "initial_prompt": {"slice": 9, "box": [1, 1, 9, 9]}, "boundaries": {"top": 8, "bottom": 10}}]});
        let job = complete("study-7", "succeeded", &parent(), &child).unwrap();
        assert_eq!(job["volume_uri"], "s3://scans/ct-copy/");
        assert_eq!(job["targets"][0]["boundaries"]["top"], 5);
        assert_eq!(job["targets"][0]["correction_clicks"].as_array().unwrap().len(), 1, "clicks kept");
        let labels: Vec<&str> =
            job["targets"].as_array().unwrap().iter().map(|t| t["label"].as_str().unwrap()).collect();
        assert_eq!(labels, ["liver", "spleen", "kidney"]);
    }

    #[test]
    fn only_a_succeeded_parent_can_be_corrected() {
        let child = json!({"job_id": "r2", "parent_job_id": "study-7"});
        let code = |status| complete("study-7", status, &parent(), &child).unwrap_err().code();
        assert_eq!(code("failed"), "JOB_PARENT_FAILED");
        assert_eq!(code("running"), "JOB_PARENT_UNFINISHED");
        assert_eq!(code("queued"), "JOB_PARENT_UNFINISHED");
        let odd = json!({"job_id": "r2", "targets": "liver"});
        assert_eq!(complete("study-7", "succeeded", &parent(), &odd).unwrap_err().code(), "JOB_MALFORMED");
        assert_eq!(parent_of(&child), Some("study-7"));
        assert_eq!(parent_of(&parent()), None);
        // A job that names itself, or an id no result folder could have, as its parent.
        let mut own = parent();
        own["parent_job_id"] = json!("study-7");
        assert_eq!(crate::job::Job::from_json(&own.to_string()).unwrap_err().code(), "JOB_PARENT_INVALID");
        own["parent_job_id"] = json!("../x");
        assert_eq!(crate::job::Job::from_json(&own.to_string()).unwrap_err().code(), "JOB_PARENT_INVALID");
    }
}
