//! Mask prompts from files (issue #21) on the real sample series: a NIfTI label map or a DICOM SEG
//! read onto the CT's grid, refused with a PROMPT_MASK_* code when it does not fit; and the CLI
//! (`radsam segment --mask FILE:LABEL`, `--mode refine`) segmenting from them.

mod common;

use common::temp_dir;
use radsam::error::Coded;
use radsam::volume::{
    read_dicom_series, read_mask, read_nifti, resample_nearest, write_dicom_seg, write_mask_nifti, ReadLimits, SegMeta,
    SegmentMask, Volume,
};
use std::path::{Path, PathBuf};
use std::process::Command;

fn sample(name: &str) -> PathBuf {
    radsam::assets::sample_data_dir().join(name)
}

fn dicom_volume() -> Volume {
    read_dicom_series(&sample("example_ct_dicom"), None, &Default::default()).unwrap()
}

/// The sample's label map on the DICOM series' own grid, written as a NIfTI file in `dir`.
fn labels_on_grid(v: &Volume, dir: &Path) -> (PathBuf, Vec<u8>) {
    let labels = Volume::open(&sample("example_seg_dicom.nii.gz"), None, &ReadLimits::default()).unwrap();
    let on_grid = if labels.grid == v.grid && labels.affine == v.affine {
        labels.data
    } else {
        resample_nearest(&labels, v, 0.0)
    };
    let values: Vec<u8> = on_grid.iter().map(|&x| x.round().clamp(0.0, 255.0) as u8).collect();
    let path = dir.join("labels.nii.gz");
    write_mask_nifti(&path, v, &values).unwrap();
    (path, values)
}

fn only(values: &[u8], label: u8) -> Vec<u8> {
    values.iter().map(|&x| (x == label) as u8).collect()
}

#[test]
fn a_label_map_on_the_grid_gives_its_label_and_anything_else_a_code() {
    let v = dicom_volume();
    let dir = temp_dir("mask-prompt-nifti");
    let (path, values) = labels_on_grid(&v, &dir);
    let limits = ReadLimits::default();
    let spleen = read_mask(&path, 1, &v, &limits).unwrap();
    assert_eq!(spleen, only(&values, 1));
    assert!(spleen.iter().filter(|&&x| x == 1).count() > 1000);

    let e = read_mask(&path, 250, &v, &limits).unwrap_err();
    assert_eq!(e.code(), "PROMPT_MASK_LABEL_ABSENT");
    assert!(e.to_string().contains("labels present: 1,"), "{e}");
    let zeros = dir.join("zeros.nii.gz");
    write_mask_nifti(&zeros, &v, &vec![0u8; v.grid.len()]).unwrap();
    assert_eq!(read_mask(&zeros, 1, &v, &limits).unwrap_err().code(), "PROMPT_MASK_EMPTY");
    // A label map of another CT (the 3 mm NIfTI scan): another grid, refused rather than resampled.
    let other = read_nifti(&sample("example_ct.nii.gz")).unwrap();
    let elsewhere = dir.join("elsewhere.nii.gz");
    write_mask_nifti(&elsewhere, &other, &vec![1u8; other.grid.len()]).unwrap();
    let e = read_mask(&elsewhere, 1, &v, &limits).unwrap_err();
    assert_eq!(e.code(), "PROMPT_MASK_GRID");
    assert!(e.to_string().contains("voxels, the volume"), "{e}");
    assert_eq!(read_mask(&dir.join("missing.nii.gz"), 1, &v, &limits).unwrap_err().code(), "VOLUME_NOT_FOUND");
}

#[test]
fn a_seg_gives_its_segment_on_the_slices_its_frames_reference() {
    let v = dicom_volume();
    let dir = temp_dir("mask-prompt-seg");
    let (_, values) = labels_on_grid(&v, &dir);
    let (spleen, liver) = (only(&values, 1), only(&values, 5));
    let segments =
        [SegmentMask { label: "spleen".into(), mask: &spleen }, SegmentMask { label: "liver".into(), mask: &liver }];
    let meta = SegMeta { uid_seed: Some("job-7\0radsam@sha256:00".into()), ..Default::default() };
    let seg = dir.join("seg.dcm");
    let uids = write_dicom_seg(&seg, &v, &segments, &meta).unwrap();
    let limits = ReadLimits::default();
    assert_eq!(read_mask(&seg, 1, &v, &limits).unwrap(), spleen);
    assert_eq!(read_mask(&seg, 2, &v, &limits).unwrap(), liver);
    let e = read_mask(&seg, 3, &v, &limits).unwrap_err();
    assert_eq!(e.code(), "PROMPT_MASK_LABEL_ABSENT");
    assert!(e.to_string().contains("segments present: 1, 2"), "{e}");
    // A folder holding the one SEG instance (a DICOMweb download) reads the same.
    let folder = dir.join("downloaded");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(&seg, folder.join("000001.dcm")).unwrap();
    assert_eq!(read_mask(&folder, 2, &v, &limits).unwrap(), liver);
    // The same seed, the same UIDs (a redelivered job stores the same instance); none: fresh ones.
    assert_eq!(write_dicom_seg(&dir.join("again.dcm"), &v, &segments, &meta).unwrap(), uids);
    let fresh = write_dicom_seg(&dir.join("fresh.dcm"), &v, &segments, &SegMeta::default()).unwrap();
    assert_ne!(fresh.sop_instance_uid, uids.sop_instance_uid);
    // A SEG cannot be placed on a volume that was not read from its series; the CT is not a SEG.
    let nifti = read_nifti(&sample("example_ct.nii.gz")).unwrap();
    assert_eq!(read_mask(&seg, 1, &nifti, &limits).unwrap_err().code(), "PROMPT_MASK_GRID");
    let ct_file = std::fs::read_dir(sample("example_ct_dicom")).unwrap().next().unwrap().unwrap().path();
    assert_eq!(read_mask(&ct_file, 1, &v, &limits).unwrap_err().code(), "PROMPT_MASK_NOT_SEG");
}

#[test]
fn the_cli_segments_from_a_mask_file_propagated_or_refined() {
    let v = dicom_volume();
    let dir = temp_dir("mask-prompt-cli");
    let (labels, values) = labels_on_grid(&v, &dir);
    let cache = dir.join("embeddings");
    let segment = |args: &[&str], out: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_radsam"))
            .env("RADSAM_CACHE_EMBEDDINGS", &cache)
            .arg("segment")
            .arg("--volume")
            .arg(sample("example_ct_dicom"))
            .arg("--target-name")
            .arg("spleen")
            .arg("--reference")
            .arg(&labels)
            .args(args)
            .arg("--out")
            .arg(dir.join(out))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let result = output.status.success().then(|| {
            let text = std::fs::read_to_string(dir.join(out).join("result.json")).unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        });
        (result, stderr)
    };
    let mask = format!("{}:1", labels.display());
    // RadSAM's mask prompt: the spleen's own slice 12 of the label map, carried to both boundaries.
    let (result, stderr) = segment(&["--mask", &mask, "--slice", "12", "--boundaries", "19,0"], "propagated");
    let result = result.unwrap_or_else(|| panic!("{stderr}"));
    let t = &result["targets"][0];
    assert_eq!(t["mode"], "propagate");
    println!("spleen from its mask on slice 12, propagated: Dice {:.3}", t["dice"].as_f64().unwrap());
    assert!(t["dice"].as_f64().unwrap() > 0.85, "spleen from its mask on one slice: Dice {}", t["dice"]);
    // Refining the whole 3D label map: every slice prompted with its own slice of it.
    let (result, stderr) = segment(&["--mask", &mask, "--mode", "refine", "--boundaries", "19,0"], "refined");
    let result = result.unwrap_or_else(|| panic!("{stderr}"));
    let t = &result["targets"][0];
    assert_eq!(t["mode"], "refine");
    println!("spleen refined from its 3D mask: Dice {:.3}", t["dice"].as_f64().unwrap());
    assert!(t["dice"].as_f64().unwrap() > 0.85, "spleen refined from its 3D mask: Dice {}", t["dice"]);
    assert_eq!(result["encoded_slices"].as_u64(), Some(0), "the first run encoded these slices: {result}");
    // A slice where the mask has nothing, and a refinement without a mask: codes, nothing written.
    // (The spleen's upper half only, prompted on slice 2.)
    let mut upper = only(&values, 1);
    for k in 0..10 {
        v.grid.insert(&mut upper, k, &vec![0u8; v.grid.plane_shape().0 * v.grid.plane_shape().1]);
    }
    write_mask_nifti(&dir.join("upper.nii.gz"), &v, &upper).unwrap();
    let upper = format!("{}", dir.join("upper.nii.gz").display());
    let (result, stderr) = segment(&["--mask", &upper, "--slice", "2", "--boundaries", "19,0"], "empty");
    assert!(result.is_none() && stderr.contains("[PROMPT_MASK_EMPTY]"), "{stderr}");
    assert!(stderr.contains("the mask covers slices"), "{stderr}");
    let (result, stderr) =
        segment(&["--mode", "refine", "--slice", "12", "--box", "291,245,392,377", "--boundaries", "19,0"], "no-mask");
    assert!(result.is_none() && stderr.contains("[PROMPT_MASK_MISSING]"), "{stderr}");
    assert!(!dir.join("empty").exists() && !dir.join("no-mask").exists());
}
