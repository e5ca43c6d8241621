//! The PACS round trip (issue #21) against a real Orthanc with its DICOMweb plugin (started by
//! scripts/services.sh on 127.0.0.1:8042): the sample series stored into it, a job naming the
//! series by its DICOMweb URI through the queue, the SEG stored back into the same study, found
//! there with QIDO-RS, downloaded with WADO-RS and read by highdicom (scripts/pacs.py); once only,
//! also when the job runs again after its commit was lost; and the PACS's refusals as codes.

mod common;

use common::{cache, World};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const DICOMWEB: &str = "dicomweb+http://127.0.0.1:8042/dicom-web";
const CREDENTIALS: [(&str, &str); 2] =
    [("RADSAM_DICOMWEB_USER", "radsam"), ("RADSAM_DICOMWEB_PASSWORD", "radsam-pacs")];

/// scripts/pacs.py with the project's Python; its stdout, or a panic with its output.
fn pacs(args: &[&str]) -> String {
    let python = std::env::var_os("PYTHON").map(Into::into).unwrap_or_else(|| cache().join("venv/bin/python"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pacs.py");
    let out = Command::new(python).arg(script).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "pacs.py {args:?}:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// The study this test run owns in the PACS, deleted when the test ends (pass or fail).
struct Study(String);

impl Drop for Study {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| pacs(&["delete", &self.0]));
    }
}

fn spleen_job(job_id: &str, volume_uri: &str) -> String {
    json!({
        "schema_version": 1, "job_id": job_id, "correlation_id": "study-pacs",
        "volume_uri": volume_uri,
        "targets": [{
            "label": "spleen", "initial_prompt": {"slice": 12, "box": [291, 245, 392, 377]},
            "boundaries": {"top": 19, "bottom": 0},
            "reference_mask_uri": "s3://scans/labels.nii.gz", "reference_label": 1
        }]
    })
    .to_string()
}

#[test]
fn a_series_from_the_pacs_is_segmented_and_its_seg_stored_back_into_its_study_once() {
    let world = World::new("pacs");
    let events = world.bind_events();
    // UIDs of this run: no other run's study or SEG is ever in the way.
    let root = format!("1.2.826.0.1.3680043.10.1234.{}", std::process::id());
    let study = Study(format!("{root}.1"));
    let series = format!("{root}.2");
    let copy = world._dir.path().join("pacs-series");
    let source = radsam::assets::sample_data_dir().join("example_ct_dicom");
    let uri = pacs(&["store", source.to_str().unwrap(), &study.0, &series, copy.to_str().unwrap()]);
    let uri = uri.trim();
    assert_eq!(uri, format!("{DICOMWEB}/studies/{}/series/{series}", study.0));

    let mut env = CREDENTIALS.to_vec();
    env.push(("RADSAM_SEG_STORE_URI", "source"));
    let mut worker = world.worker(&env);
    world.submit(&spleen_job("job-pacs", uri));
    world.wait_status("job-pacs", &["succeeded", "failed"], 300, &mut [&mut worker]);
    assert_eq!(world.status("job-pacs").as_deref(), Some("succeeded"), "{}", worker.log_tail());
    let dice: Vec<f64> = world.query("SELECT dice FROM results WHERE job_id = $1", "job-pacs");
    assert!(dice[0] > 0.9, "the spleen of the series read by WADO-RS: Dice {}", dice[0]);

    // Where the SEG went: in the row, in the event, in the study.
    let stored: Vec<String> = world.query("SELECT pacs_seg_uri FROM results WHERE job_id = $1", "job-pacs");
    assert!(stored[0].contains(&format!("/dicom-web/studies/{}/series/", study.0)), "{}", stored[0]);
    let warnings: Vec<Option<String>> =
        world.query("SELECT pacs_store_warning FROM results WHERE job_id = $1", "job-pacs");
    assert_eq!(warnings, vec![None]);
    let got = world.drain(&events);
    assert_eq!(got[0]["pacs_seg_uri"], Value::String(stored[0].clone()), "{got:?}");
    let radsam = Path::new(env!("CARGO_BIN_EXE_radsam-worker")).with_file_name("radsam");
    let listed = Command::new(&radsam).args(["results", "job-pacs"]).env("DATABASE_URL", &world.database_url).output();
    let listed = String::from_utf8_lossy(&listed.unwrap().stdout).into_owned();
    assert!(listed.contains(&format!("SEG in the PACS: {}", stored[0])), "{listed}");
    // QIDO-RS finds exactly one SEG in the study; WADO-RS gives it; highdicom reads frames equal to
    // the worker's mask (labels.nii.gz in S3), slice by slice.
    let labels =
        world.rt.block_on(world.storage.fetch("s3://results/job-pacs/labels.nii.gz", world._dir.path())).unwrap();
    println!("{}", pacs(&["check-seg", &study.0, labels.to_str().unwrap(), copy.to_str().unwrap(), "spleen"]));

    // The commit lost after the SEG was stored (the rows gone, as if the worker died between the
    // two): the redelivered job stores the same instance again, and the study still holds one.
    world.rt.block_on(async {
        let pool = sqlx::PgPool::connect(&world.database_url).await.unwrap();
        sqlx::query("DELETE FROM results WHERE job_id = 'job-pacs'").execute(&pool).await.unwrap();
        sqlx::query("DELETE FROM jobs WHERE job_id = 'job-pacs'").execute(&pool).await.unwrap();
    });
    world.submit(&spleen_job("job-pacs", uri));
    world.wait_status("job-pacs", &["succeeded", "failed"], 300, &mut [&mut worker]);
    assert_eq!(world.status("job-pacs").as_deref(), Some("succeeded"), "{}", worker.log_tail());
    let again: Vec<String> = world.query("SELECT pacs_seg_uri FROM results WHERE job_id = $1", "job-pacs");
    assert_eq!(again, stored, "the same SEG instance");
    assert_eq!(pacs(&["count-seg", &study.0]).trim(), "1");

    // The SEG in the PACS as the next job's mask prompt, fetched by DICOMweb too: refined slice by
    // slice (mode refine). Its own SEG joins the study: two now.
    let seg_series = stored[0].split("/instances/").next().unwrap().replacen("http://", "dicomweb+http://", 1);
    let mut refine = serde_json::from_str::<Value>(&spleen_job("job-pacs-refine", uri)).unwrap();
    refine["targets"][0]["initial_prompt"] = json!({"slice": 12, "mask_uri": seg_series, "mask_label": 1});
    refine["targets"][0]["mode"] = json!("refine");
    world.submit(&refine.to_string());
    world.wait_status("job-pacs-refine", &["succeeded", "failed"], 300, &mut [&mut worker]);
    assert_eq!(world.status("job-pacs-refine").as_deref(), Some("succeeded"), "{}", worker.log_tail());
    let dice: Vec<f64> = world.query("SELECT dice FROM results WHERE job_id = $1", "job-pacs-refine");
    assert!(dice[0] > 0.85, "the spleen refined from the PACS's SEG: Dice {}", dice[0]);
    assert_eq!(pacs(&["count-seg", &study.0]).trim(), "2");

    // Refusals with their codes, recorded: a series the PACS does not have; a SEG asked of a
    // NIfTI volume (none exists).
    world.submit(&spleen_job("job-pacs-404", &format!("{DICOMWEB}/studies/{}/series/{root}.99", study.0)));
    let mut nifti = serde_json::from_str::<Value>(&spleen_job("job-pacs-nifti", "s3://scans/labels.nii.gz")).unwrap();
    nifti["seg_store_uri"] = json!(DICOMWEB);
    nifti["targets"][0]["boundaries"] = json!({"top": 12, "bottom": 12});
    world.submit(&nifti.to_string());
    for (job, code) in [("job-pacs-404", "DICOMWEB_NOT_FOUND"), ("job-pacs-nifti", "DICOMWEB_NO_SEG")] {
        world.wait_status(job, &["succeeded", "failed"], 120, &mut [&mut worker]);
        let codes: Vec<String> = world.query("SELECT error_code FROM jobs WHERE job_id = $1", job);
        assert_eq!(codes, vec![code.to_string()], "{job}: {}", worker.log_tail());
    }
    assert!(worker.terminate().success());

    // A worker without the PACS's credentials: 401, recorded as such, not retried for ever.
    let mut stranger = world.worker(&[]);
    world.submit(&spleen_job("job-pacs-401", uri));
    world.wait_status("job-pacs-401", &["succeeded", "failed"], 120, &mut [&mut stranger]);
    let codes: Vec<String> = world.query("SELECT error_code FROM jobs WHERE job_id = $1", "job-pacs-401");
    assert_eq!(codes, vec!["DICOMWEB_UNAUTHORIZED".to_string()], "{}", stranger.log_tail());
    assert_eq!(pacs(&["count-seg", &study.0]).trim(), "2", "nothing stored by the failures");
}
