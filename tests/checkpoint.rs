//! Strict checkpoint import: a wrong, incomplete, padded-out or truncated checkpoint is refused
//! with an error that names the first mismatch, never a panic, and never a half-loaded model.

mod common;

use common::weights;
use radsam::model::{CheckpointError, ModelConfig, Sam};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("radsam-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn rewrite(src: &Path, dst: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let mut tensors = Tensor::read_safetensors(src).unwrap();
    edit(&mut tensors);
    Tensor::write_safetensors(&tensors, dst).unwrap();
}

fn load_lite(path: &Path) -> Result<(), CheckpointError> {
    Sam::load(ModelConfig::by_name("lite_medsam").unwrap(), path, Device::Cpu).map(|_| ())
}

#[test]
fn real_checkpoints_load_with_every_tensor_consumed() {
    for (model, tensors, counters) in [("lite_medsam", 435, 27), ("mobile_sam", 439, 27)] {
        let (_, report) = Sam::load(ModelConfig::by_name(model).unwrap(), &weights(model), Device::Cpu).unwrap();
        assert_eq!(report.tensors_loaded + report.counters_skipped, tensors, "{model}");
        assert_eq!(report.counters_skipped, counters, "{model}: only BatchNorm counters may be skipped");
    }
}

#[test]
fn wrong_model_names_the_first_shape_mismatch() {
    let err = load_lite(&weights("mobile_sam")).unwrap_err();
    match err {
        CheckpointError::ShapeMismatch { name, expected, found, .. } => {
            assert_eq!(name, "image_encoder.patch_embed.seq.0.c.weight");
            assert_eq!((expected, found), (vec![32, 3, 1, 1], vec![32, 3, 3, 3]));
        }
        other => panic!("expected a shape mismatch, got {other}"),
    }
}

#[test]
fn missing_tensor_is_named() {
    let path = tmp("missing.safetensors");
    rewrite(&weights("lite_medsam"), &path, |t| t.retain(|(n, _)| n != "mask_decoder.iou_token.weight"));
    let err = load_lite(&path).unwrap_err();
    assert!(matches!(&err, CheckpointError::Missing { name, .. } if name == "mask_decoder.iou_token.weight"), "{err}");
    assert!(err.to_string().contains("mask_decoder.iou_token.weight"));
}

#[test]
fn unexpected_tensor_is_named() {
    let path = tmp("extra.safetensors");
    rewrite(&weights("lite_medsam"), &path, |t| {
        t.push(("image_encoder.head.weight".into(), Tensor::zeros([1000, 320], tch::kind::FLOAT_CPU)))
    });
    let err = load_lite(&path).unwrap_err();
    assert!(matches!(&err, CheckpointError::Unexpected { name, .. } if name == "image_encoder.head.weight"), "{err}");
}

#[test]
fn truncated_file_is_an_error_not_a_panic() {
    let src = std::fs::read(weights("lite_medsam")).unwrap();
    for keep in [0, 7, 100, src.len() / 2, src.len() - 1] {
        let path = tmp(&format!("truncated-{keep}.safetensors"));
        std::fs::write(&path, &src[..keep]).unwrap();
        let err = load_lite(&path).unwrap_err();
        assert!(matches!(err, CheckpointError::Unreadable { .. }), "truncated at {keep}: {err}");
    }
}

#[test]
fn half_precision_checkpoint_loads_and_is_widened() {
    let path = tmp("half.safetensors");
    rewrite(&weights("lite_medsam"), &path, |t| {
        for (_, v) in t.iter_mut() {
            if v.is_floating_point() {
                *v = v.to_kind(tch::Kind::Half);
            }
        }
    });
    let (sam, _) = Sam::load(ModelConfig::by_name("lite_medsam").unwrap(), &path, Device::Cpu).unwrap();
    let w = &sam.var_store().variables()["mask_decoder.iou_token.weight"];
    assert_eq!(w.kind(), tch::Kind::Float);
}
