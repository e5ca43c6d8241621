//! Volumes in and out on the real sample data, checked against independent readers (pydicom,
//! nibabel), and every kind of bad input refused with its stable code and nothing written.

use radsam::error::Coded;
mod common;

use common::{reference, run_python_check, temp_dir};
use radsam::mask_stats::voxel_count;
use radsam::volume::{
    read_dicom_series, read_nifti, read_nifti_with_limits, resample_nearest, write_nifti, ReadLimits, Source, Volume,
    VolumeError,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    radsam::assets::sample_data_dir().join(name)
}

fn dicom_dir() -> PathBuf {
    data("example_ct_dicom")
}

#[test]
fn dicom_series_decodes_to_the_same_hu_as_pydicom() {
    let v = read_dicom_series(&dicom_dir(), None, &ReadLimits::default()).unwrap();
    assert_eq!(v.dims(), [512, 512, 20]);
    assert_eq!(v.grid.slice_axis, 2);
    let hu = tch::Tensor::read_npy(reference("dicom_hu.npy")).unwrap();
    assert_eq!(hu.size(), vec![20, 512, 512]);
    let theirs: Vec<f32> = Vec::try_from(hu.flatten(0, -1)).unwrap();
    let differing = v.data.iter().zip(&theirs).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "voxels differing from pydicom");
    let Source::Dicom(info) = &v.source else { panic!("DICOM source expected") };
    let order: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(reference("dicom_sop_order.json")).unwrap()).unwrap();
    assert_eq!(info.sop_instance_uids, order, "slice order by position along the normal");
    assert!((v.spacing[2] - 2.0).abs() < 1e-6 && (v.spacing[0] - 0.9765625).abs() < 1e-9);
}

#[test]
fn nifti_round_trips_bit_for_bit() {
    let dir = temp_dir("roundtrip");
    for name in ["example_ct.nii.gz", "example_seg_fast_force_split.nii.gz", "example_mr_sm.nii.gz"] {
        let original = data(name);
        let v = read_nifti(&original).unwrap();
        let written = dir.join(name);
        write_nifti(&written, &v).unwrap();
        let again = read_nifti(&written).unwrap();
        assert_eq!((again.grid, again.affine, again.spacing), (v.grid, v.affine, v.spacing), "{name}");
        assert!(again.data.iter().zip(&v.data).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: voxels");
        println!("{}", run_python_check("check_nifti_roundtrip.py", &[&original, &written]));
    }
}

fn volumes_by_label(v: &Volume) -> BTreeMap<String, (u64, f64)> {
    let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
    for &x in v.data.iter().filter(|&&x| x > 0.0) {
        *counts.entry(x.round() as i64).or_default() += 1;
    }
    counts.into_iter().map(|(l, c)| (l.to_string(), (c, c as f64 * v.voxel_ml()))).collect()
}

fn assert_volumes_match(ours: &BTreeMap<String, (u64, f64)>, theirs: &serde_json::Value, what: &str) {
    let theirs = theirs.as_object().unwrap();
    assert_eq!(ours.len(), theirs.len(), "{what}: label sets differ");
    for (label, (voxels, ml)) in ours {
        let t = &theirs[label];
        assert_eq!(*voxels, t["voxels"].as_u64().unwrap(), "{what}: label {label} voxels");
        let tm = t["ml"].as_f64().unwrap();
        assert!((ml - tm).abs() <= 1e-9 * tm.max(1.0), "{what}: label {label}: {ml} mL vs nibabel {tm} mL");
    }
}

#[test]
fn organ_volumes_in_ml_match_nibabel_and_numpy() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference("organ_volumes.json")).unwrap()).unwrap();
    for name in ["example_seg_fast_force_split.nii.gz", "example_seg_dicom.nii.gz", "example_seg.nii.gz"] {
        assert_volumes_match(&volumes_by_label(&read_nifti(&data(name)).unwrap()), &expected[name], name);
    }
    // The DICOM scan's labels were written by another tool with the rows flipped; brought onto our
    // DICOM grid through the affines they keep every voxel, so the volumes are unchanged.
    let ct = read_dicom_series(&dicom_dir(), None, &ReadLimits::default()).unwrap();
    let labels = read_nifti(&data("example_seg_dicom.nii.gz")).unwrap();
    let on_ct = Volume { data: resample_nearest(&labels, &ct, 0.0), ..ct.clone() };
    assert_volumes_match(
        &volumes_by_label(&on_ct),
        &expected["example_seg_dicom.nii.gz"],
        "labels resampled onto the DICOM grid",
    );
    // And they sit on the anatomy: liver (label 5) voxels are soft tissue in the CT.
    let liver: Vec<u8> = on_ct.data.iter().map(|&l| (l == 5.0) as u8).collect();
    let mean_hu = liver.iter().zip(&ct.data).filter(|(m, _)| **m == 1).map(|(_, &h)| h as f64).sum::<f64>()
        / voxel_count(&liver) as f64;
    assert!((0.0..200.0).contains(&mean_hu), "liver mean HU {mean_hu}");
}

fn code(r: Result<Volume, VolumeError>) -> &'static str {
    match r {
        Ok(v) => panic!("accepted a bad input ({:?})", v.dims()),
        Err(e) => {
            println!("{}: {e}", e.code());
            e.code()
        }
    }
}

/// An uncompressed copy of the small sample CT, with `patch` applied to its 348-byte header.
fn patched_nifti(dir: &Path, name: &str, patch: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let v = read_nifti(&data("example_ct_sm.nii.gz")).unwrap();
    let path = dir.join(name);
    write_nifti(&path, &v).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    patch(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    path
}

#[test]
fn bad_nifti_gets_a_typed_error() {
    let dir = temp_dir("bad-nifti");
    let gz = std::fs::read(data("example_ct.nii.gz")).unwrap();
    for cut in [10, 200, gz.len() / 2, gz.len() - 9] {
        let p = dir.join(format!("cut{cut}.nii.gz"));
        std::fs::write(&p, &gz[..cut]).unwrap();
        assert_eq!(code(read_nifti(&p)), "VOLUME_TRUNCATED", "gzip cut at {cut}");
    }
    let set_i16 = |b: &mut Vec<u8>, at: usize, v: i16| b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let set_f32 = |b: &mut Vec<u8>, at: usize, v: f32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    // dim[3] (offset 46) larger than the data: header and data disagree.
    let p = patched_nifti(&dir, "longer.nii", |b| set_i16(b, 46, 60));
    assert_eq!(code(read_nifti(&p)), "VOLUME_DIMENSIONS");
    // A data file cut short.
    let p = patched_nifti(&dir, "short.nii", |b| b.truncate(b.len() - 1000));
    assert_eq!(code(read_nifti(&p)), "VOLUME_DIMENSIONS");
    // 30000^3 voxels: refused from the header, before any allocation.
    let p = patched_nifti(&dir, "absurd.nii", |b| (1..=3).for_each(|d| set_i16(b, 40 + 2 * d, 30000)));
    let t = std::time::Instant::now();
    assert_eq!(code(read_nifti(&p)), "VOLUME_TOO_LARGE");
    assert!(t.elapsed().as_secs_f64() < 1.0);
    // A configured limit applies to ordinary volumes too.
    assert_eq!(
        code(read_nifti_with_limits(
            &data("example_ct_sm.nii.gz"),
            &ReadLimits { max_voxels: 1000, ..ReadLimits::default() }
        )),
        "VOLUME_TOO_LARGE"
    );
    for (name, value) in [("zero.nii", 0.0f32), ("nan.nii", f32::NAN), ("negative.nii", -1.0)] {
        let p = patched_nifti(&dir, name, |b| set_f32(b, 80, value)); // pixdim[1]
        assert_eq!(code(read_nifti(&p)), "VOLUME_BAD_SPACING", "{name}");
    }
    let p = patched_nifti(&dir, "4d.nii", |b| {
        set_i16(b, 40, 4);
        set_i16(b, 48, 2);
    });
    assert_eq!(code(read_nifti(&p)), "VOLUME_DIMENSIONS");
    let p = dir.join("text.nii");
    std::fs::write(&p, vec![b'x'; 400]).unwrap();
    assert_eq!(code(read_nifti(&p)), "VOLUME_UNREADABLE");
    assert_eq!(code(read_nifti(&dir.join("absent.nii.gz"))), "VOLUME_NOT_FOUND");
}

#[test]
fn bad_dicom_series_gets_a_typed_error() {
    let bad = |name: &str| reference("bad_dicom").join(name);
    let limits = ReadLimits::default();
    assert_eq!(code(read_dicom_series(&bad("mr"), None, &limits)), "VOLUME_NOT_CT");
    assert_eq!(code(read_dicom_series(&bad("empty"), None, &limits)), "VOLUME_EMPTY_FOLDER");
    assert_eq!(code(read_dicom_series(&bad("not_dicom"), None, &limits)), "VOLUME_EMPTY_FOLDER");
    assert_eq!(code(read_dicom_series(&bad("missing_slice"), None, &limits)), "VOLUME_SLICE_GAPS");
    let err = read_dicom_series(&bad("jpegls"), None, &limits).unwrap_err();
    assert_eq!(err.code(), "VOLUME_UNSUPPORTED_TRANSFER_SYNTAX", "{err}");
    assert!(err.to_string().contains("1.2.840.10008.1.2.4.80"), "{err}");
    let err = read_dicom_series(&bad("two_series"), None, &limits).unwrap_err();
    assert_eq!(err.code(), "VOLUME_MULTIPLE_SERIES");
    let VolumeError::MultipleSeries { series, .. } = &err else { unreachable!() };
    assert_eq!(series.len(), 2, "{err}");
    assert!(err.to_string().contains("second series"), "the listing names each series: {err}");
    // Choosing one by SeriesInstanceUID reads it: every other slice, evenly spaced.
    let uid = series.iter().find(|s| s.contains("second series")).unwrap().split(' ').next().unwrap().to_string();
    let v = read_dicom_series(&bad("two_series"), Some(&uid), &limits).unwrap();
    assert_eq!(v.dims()[2], 10);
    assert_eq!(code(read_dicom_series(&bad("two_series"), Some("1.2.3"), &limits)), "VOLUME_SERIES_NOT_FOUND");
    assert_eq!(
        code(read_dicom_series(&dicom_dir(), None, &ReadLimits { max_voxels: 1 << 20, ..ReadLimits::default() })),
        "VOLUME_TOO_LARGE"
    );
    assert_eq!(code(Volume::open(Path::new("/nonexistent/series"), None, &limits)), "VOLUME_NOT_FOUND");
}

/// Inputs that the dicom_series fuzz target found, one folder each (tests/data/fuzz_regressions):
/// file meta elements declaring gigabytes (dicom-rs would allocate and zero them) and corrupt RLE
/// data (a dicom-rs decoder panic). Each must be a quick typed error.
#[test]
fn fuzz_regressions_are_typed_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz_regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let series = entry.unwrap().path();
        let t = std::time::Instant::now();
        let result = std::panic::catch_unwind(|| read_dicom_series(&series, None, &ReadLimits::default()));
        let result = result.unwrap_or_else(|_| panic!("the reader panicked on {}", series.display()));
        println!("{}: {:?}", series.display(), result.as_ref().map(|v| v.dims()).map_err(|e| e.code()));
        assert!(result.is_err(), "{} was accepted", series.display());
        assert!(t.elapsed().as_secs_f64() < 2.0);
        seen += 1;
    }
    assert!(seen >= 3, "regression inputs missing from {}", dir.display());
}
