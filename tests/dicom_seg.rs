//! DICOM SEG output on the real sample series, read back by independent readers (highdicom and
//! pydicom, scripts/check_dicom_seg.py), and refused, with nothing written, when it cannot be right.

use radsam::error::Coded;
mod common;

use common::{run_python_check, temp_dir};
use radsam::volume::{read_dicom_series, read_nifti, write_dicom_seg, SegMeta, SegmentMask, Source, Volume};
use std::path::{Path, PathBuf};
use tch::Tensor;

fn sample(name: &str) -> PathBuf {
    radsam::assets::sample_data_dir().join(name)
}

fn dicom_volume() -> Volume {
    read_dicom_series(&sample("example_ct_dicom"), None, &Default::default()).unwrap()
}

fn above(v: &Volume, hu: f32) -> Vec<u8> {
    v.data.iter().map(|&x| u8::from(x > hu)).collect()
}

/// The expected masks in the layout the script reads: segments.txt, sop_instance_uids.txt and
/// segment_<n>.npy as (slices, rows, columns) in the volume's slice order.
fn write_expected(dir: &Path, v: &Volume, segments: &[SegmentMask]) {
    let Source::Dicom(series) = &v.source else { panic!("DICOM source expected") };
    let [columns, rows, slices] = v.dims();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("sop_instance_uids.txt"), series.sop_instance_uids.join("\n")).unwrap();
    let labels: Vec<&str> = segments.iter().map(|s| s.label.as_str()).collect();
    std::fs::write(dir.join("segments.txt"), labels.join("\n")).unwrap();
    for (i, s) in segments.iter().enumerate() {
        Tensor::from_slice(s.mask)
            .view([slices as i64, rows as i64, columns as i64])
            .write_npy(dir.join(format!("segment_{}.npy", i + 1)))
            .unwrap();
    }
}

/// Nothing but `expected` in `dir`: no output at a refused path, no temporary left behind.
fn assert_only(dir: &Path, expected: &[&str]) {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, expected, "files in {}", dir.display());
}

#[test]
fn seg_of_the_sample_series_reads_back_exactly_in_highdicom() {
    let v = dicom_volume();
    let [columns, rows, slices] = v.dims();
    let plane = columns * rows;
    let body = above(&v, -300.0);
    let bone = above(&v, 300.0);
    // Bone on slices 5 to 12 only, so some slices of a segment get no frame.
    let mut bone_mid = bone.clone();
    bone_mid[..5 * plane].fill(0);
    bone_mid[13 * plane..].fill(0);
    let empty = vec![0u8; v.grid.len()];
    let count = |m: &[u8]| m.iter().filter(|&&x| x != 0).count();
    assert!(
        count(&body) > 10 * count(&bone) && count(&bone) > count(&bone_mid) && count(&bone_mid) > 0,
        "thresholds give nested, non-empty masks"
    );
    assert_eq!(slices, 20);
    let segments = [
        SegmentMask { label: "body".into(), mask: &body },
        SegmentMask { label: "bone".into(), mask: &bone },
        SegmentMask { label: "bone_mid".into(), mask: &bone_mid },
        SegmentMask { label: "empty".into(), mask: &empty },
    ];
    let dir = temp_dir("dicom-seg");
    let seg = dir.join("seg.dcm");
    write_dicom_seg(&seg, &v, &segments, &SegMeta::default()).unwrap();
    assert_only(&dir, &["seg.dcm"]);
    let expected = dir.join("expected");
    write_expected(&expected, &v, &segments);
    println!("{}", run_python_check("check_dicom_seg.py", &[&seg, &sample("example_ct_dicom"), &expected]));
}

#[test]
fn seg_needs_a_dicom_source_and_writes_nothing_otherwise() {
    let v = read_nifti(&sample("example_ct.nii.gz")).unwrap();
    let mask = above(&v, 300.0);
    let dir = temp_dir("dicom-seg-nifti");
    let seg = dir.join("seg.dcm");
    let e = write_dicom_seg(&seg, &v, &[SegmentMask { label: "bone".into(), mask: &mask }], &SegMeta::default())
        .unwrap_err();
    assert_eq!(e.code(), "VOLUME_UNWRITABLE");
    assert!(e.to_string().contains("not read from DICOM"), "{e}");
    assert_only(&dir, &[]);
}

#[test]
fn masks_of_the_wrong_length_or_without_a_label_are_refused() {
    let v = dicom_volume();
    let dir = temp_dir("dicom-seg-bad-mask");
    let seg = dir.join("seg.dcm");
    let short = vec![1u8; v.grid.len() - 1];
    let e = write_dicom_seg(&seg, &v, &[SegmentMask { label: "body".into(), mask: &short }], &SegMeta::default())
        .unwrap_err();
    assert_eq!(e.code(), "VOLUME_UNWRITABLE");
    assert!(e.to_string().contains(&format!("has {} voxels, the volume {}", v.grid.len() - 1, v.grid.len())), "{e}");
    let full = vec![1u8; v.grid.len()];
    let e =
        write_dicom_seg(&seg, &v, &[SegmentMask { label: " ".into(), mask: &full }], &SegMeta::default()).unwrap_err();
    assert!(e.to_string().contains("segment label"), "{e}");
    assert!(write_dicom_seg(&seg, &v, &[], &SegMeta::default()).unwrap_err().to_string().contains("0 segments"));
    assert_only(&dir, &[]);
}
