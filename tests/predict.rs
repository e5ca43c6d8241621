//! Slice-level prediction on the real sample CT, and the `radsam predict` command end to end.

mod common;

use common::weights;
use radsam::mask_stats::dice;
use radsam::model::{ModelConfig, Sam};
use radsam::prompt::{bounding_box, interior_point, BoxPrompt, Point, SlicePrompt};
use radsam::segment::{predict_slices, MaskChoice, PredictError};
use radsam::volume::{read_nifti, Volume};
use std::process::Command;
use tch::Device;

const LIVER: f32 = 5.0;

fn data(name: &str) -> std::path::PathBuf {
    radsam::assets::sample_data_dir().join(name)
}

fn liver_mask(labels: &Volume, k: usize) -> Vec<u8> {
    let [nx, ny, _] = labels.dims();
    labels.data[k * nx * ny..(k + 1) * nx * ny].iter().map(|&v| (v == LIVER) as u8).collect()
}

fn lite() -> Sam {
    Sam::load(ModelConfig::by_name("lite_medsam").unwrap(), &weights("lite_medsam"), Device::Cpu).unwrap().0
}

#[test]
fn box_prompt_segments_the_liver_and_mixed_prompts_batch_like_single_calls() {
    radsam::allocator::keep_freed_memory();
    let sam = lite();
    let ct = read_nifti(&data("example_ct.nii.gz")).unwrap();
    let labels = read_nifti(&data("example_seg_fast_force_split.nii.gz")).unwrap();
    let nx = ct.dims()[0];
    let slices = [100, 106, 110];
    let masks: Vec<Vec<u8>> = slices.iter().map(|&k| liver_mask(&labels, k)).collect();
    // Three prompt shapes in one call: a box, a point, a box with a mask.
    let prompts = vec![
        SlicePrompt { bbox: bounding_box(&masks[0], nx), ..Default::default() },
        SlicePrompt { points: vec![interior_point(&masks[1], nx).unwrap()], ..Default::default() },
        SlicePrompt { bbox: bounding_box(&masks[2], nx), mask: Some(masks[2].clone()), ..Default::default() },
    ];
    let together = predict_slices(&sam, &ct, &slices, &prompts, MaskChoice::Primary).unwrap();
    for (i, &k) in slices.iter().enumerate() {
        let alone = predict_slices(&sam, &ct, &[k], &prompts[i..i + 1], MaskChoice::Primary).unwrap();
        let d = (together.low_res_logits.get(i as i64) - alone.low_res_logits.get(0)).abs().max().double_value(&[]);
        assert!(d < 1e-4, "slice {k}: batched logits differ from a single call by {d}");
    }
    // The box prompt of the shipped LiteMedSAM finds the liver (a silver-standard label).
    let d = dice(&together.slices[0].mask, &masks[0]);
    assert!(d > 0.75, "box prompt on slice 100: Dice {d}");
    let d = dice(&together.slices[2].mask, &masks[2]);
    assert!(d > 0.9, "box + mask prompt on slice 110: Dice {d}");
}

#[test]
fn bad_prompts_are_refused_before_any_model_work() {
    radsam::allocator::keep_freed_memory();
    let sam = lite();
    let ct = read_nifti(&data("example_ct.nii.gz")).unwrap();
    let b = |x0, y0, x1, y1| SlicePrompt { bbox: Some(BoxPrompt { x0, y0, x1, y1 }), ..Default::default() };
    let err = predict_slices(&sam, &ct, &[112], &[b(1.0, 1.0, 5.0, 5.0)], MaskChoice::Primary).unwrap_err();
    assert!(matches!(err, PredictError::SliceOutside { slice: 112, count: 112 }), "{err}");
    let err = predict_slices(&sam, &ct, &[5], &[b(5.0, 1.0, 5.0, 9.0)], MaskChoice::Primary).unwrap_err();
    assert!(matches!(err, PredictError::Prompt { slice: 5, .. }), "{err}");
    let p = SlicePrompt { points: vec![Point { x: 122.0, y: 3.0, positive: true }], ..Default::default() };
    assert!(predict_slices(&sam, &ct, &[5], &[p], MaskChoice::Primary).is_err(), "x = 122 is outside a 122-wide slice");
    let err = predict_slices(&sam, &ct, &[5, 6], &[b(1.0, 1.0, 5.0, 5.0)], MaskChoice::Primary).unwrap_err();
    assert!(matches!(err, PredictError::Count { .. }), "{err}");
}

#[test]
fn cli_predict_writes_mask_logits_and_json_and_nothing_on_error() {
    radsam::allocator::keep_freed_memory();
    let out = std::env::temp_dir().join(format!("radsam-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = |extra: &[&str], out: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_radsam"))
            .args(["predict", "--volume"])
            .arg(data("example_ct.nii.gz"))
            .arg("--reference")
            .arg(data("example_seg_fast_force_split.nii.gz"))
            .args(["--label", "5", "--slices", "104,106", "--mask-choice", "best-iou", "--out"])
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    };
    let ok = run(&["--prompt-from-reference", "box"], &out);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("predictions.json")).unwrap()).unwrap();
    assert_eq!(report["slices"].as_array().unwrap().len(), 2);
    for s in report["slices"].as_array().unwrap() {
        assert_eq!(s["iou_predictions"].as_array().unwrap().len(), 4);
        assert!((1..=3).contains(&s["chosen_mask"].as_i64().unwrap()), "best-iou picks a secondary mask");
        assert!(s["dice_vs_reference"].as_f64().unwrap() > 0.5);
    }
    let mask = read_nifti(&out.join("mask.nii.gz")).unwrap();
    let ct = read_nifti(&data("example_ct.nii.gz")).unwrap();
    assert_eq!(mask.dims(), ct.dims());
    assert_eq!(mask.affine, ct.affine, "mask keeps the input's affine");
    let [nx, ny, _] = mask.dims();
    let on_slice = |k: usize| mask.data[k * nx * ny..(k + 1) * nx * ny].iter().filter(|&&v| v > 0.0).count();
    assert!(on_slice(106) > 100 && on_slice(104) > 100 && on_slice(50) == 0);
    let logits = tch::Tensor::read_npy(out.join("low_res_logits.npy")).unwrap();
    assert_eq!(logits.size(), vec![2, 4, 256, 256]);

    let bad_out = out.join("refused");
    let bad = run(&["--box", "10,10,5,20"], &bad_out);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("box"), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(!bad_out.exists(), "a refused job writes nothing");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn cli_predict_on_a_dicom_series_writes_seg_and_overlays() {
    radsam::allocator::keep_freed_memory();
    let out = common::temp_dir("cli-dicom");
    let run = Command::new(env!("CARGO_BIN_EXE_radsam"))
        .args(["predict", "--volume"])
        .arg(data("example_ct_dicom"))
        .arg("--reference")
        .arg(data("example_seg_dicom.nii.gz")) // written by another tool with flipped rows: resampled
        .args([
            "--label",
            "5",
            "--target-name",
            "liver",
            "--prompt-from-reference",
            "box",
            "--slices",
            "5,10",
            "--overlays",
            "--out",
        ])
        .arg(out.join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("resampled"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run/predictions.json")).unwrap()).unwrap();
    let dice = report["dice_3d_on_predicted_slices"].as_f64().unwrap();
    assert!(dice > 0.8, "liver on the validation scan, box prompts: Dice {dice}");
    assert!(report["volume_ml"].as_f64().unwrap() > 10.0);
    let seg = dicom_object::open_file(out.join("run/seg.dcm")).unwrap();
    assert_eq!(seg.element(dicom_dictionary_std::tags::MODALITY).unwrap().to_str().unwrap().trim(), "SEG");
    for k in [5, 10] {
        let png = image::open(out.join(format!("run/overlays/slice_{k:04}.png"))).unwrap();
        assert!(png.width() >= 512);
    }
    // Nothing is left in staging folders beside the output.
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
