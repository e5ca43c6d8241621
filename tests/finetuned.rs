//! Fine-tuned checkpoints (the form the project's RadSAM weights ship in): the base checkpoint named
//! in the file is loaded first, then the file's tensors; a different base, a foreign tensor or a
//! wrong shape is refused; the committed RadSAM weights load under the model name `radsam`.

mod common;

use radsam::model::{finetuned, CheckpointError, InputWindow, ModelConfig, Sam, RADSAM_WINDOW};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

fn lite() -> ModelConfig {
    ModelConfig::by_name("lite_medsam").unwrap()
}

fn meta(sha: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (finetuned::META_BASE_MODEL.to_string(), "lite_medsam".to_string()),
        (finetuned::META_BASE_SHA256.to_string(), sha.to_string()),
    ])
}

#[test]
fn a_finetuned_file_loads_on_top_of_its_base() {
    let base = common::weights("lite_medsam");
    let sha = finetuned::sha256_hex(&base).unwrap();
    let dir = common::temp_dir("finetuned");
    let name = "mask_decoder.iou_token.weight";
    let changed = Tensor::full([1, 256], 0.25, (Kind::Float, Device::Cpu));
    let path = dir.join("tuned.safetensors");
    finetuned::write(&path, &[(name.to_string(), changed.shallow_clone())], &meta(&sha)).unwrap();
    assert_eq!(finetuned::read_metadata(&path).unwrap()[finetuned::META_BASE_MODEL], "lite_medsam");

    let (plain, _) = Sam::load(lite(), &base, Device::Cpu).unwrap();
    let (tuned, report) = Sam::load(lite(), &path, Device::Cpu).unwrap();
    assert_eq!(report.tensors_loaded, plain.var_store().variables().len(), "the whole base was loaded");
    let (pv, tv) = (plain.var_store().variables(), tuned.var_store().variables());
    assert_eq!((&tv[name] - &changed).abs().max().double_value(&[]), 0.0, "0.25 is exact in half precision");
    for (n, t) in &pv {
        if n != name {
            assert_eq!((t - &tv[n]).abs().max().double_value(&[]), 0.0, "{n} is the base's");
        }
    }

    // Another base (a different SHA-256), a tensor the model lacks, a wrong shape: refused.
    finetuned::write(&path, &[(name.to_string(), changed.shallow_clone())], &meta(&"0".repeat(64))).unwrap();
    assert!(matches!(Sam::load(lite(), &path, Device::Cpu), Err(CheckpointError::BaseMismatch { .. })));
    finetuned::write(&path, &[("mask_decoder.nonsense".to_string(), changed.shallow_clone())], &meta(&sha)).unwrap();
    assert!(matches!(Sam::load(lite(), &path, Device::Cpu), Err(CheckpointError::Unexpected { .. })));
    finetuned::write(&path, &[(name.to_string(), Tensor::zeros([2, 256], (Kind::Float, Device::Cpu)))], &meta(&sha))
        .unwrap();
    assert!(matches!(Sam::load(lite(), &path, Device::Cpu), Err(CheckpointError::ShapeMismatch { .. })));
    // A base that is not there.
    let mut m = meta(&sha);
    m.insert(finetuned::META_BASE_MODEL.to_string(), "no_such_model".to_string());
    finetuned::write(&path, &[(name.to_string(), changed.shallow_clone())], &m).unwrap();
    assert!(matches!(Sam::load(lite(), &path, Device::Cpu), Err(CheckpointError::BaseMissing { .. })));
    // A truncated file: the header is whole, the tensor data is not.
    finetuned::write(&path, &[(name.to_string(), changed)], &meta(&sha)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    assert!(matches!(Sam::load(lite(), &path, Device::Cpu), Err(CheckpointError::Unreadable { .. })));
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(Sam::load(lite(), &path, Device::Cpu), Err(CheckpointError::Unreadable { .. })));
    std::fs::write(&path, [255u8; 16]).unwrap();
    assert!(matches!(Sam::load(lite(), &path, Device::Cpu), Err(CheckpointError::Unreadable { .. })));
}

#[test]
fn a_finetuned_file_carries_its_input_window() {
    let base = common::weights("lite_medsam");
    let sha = finetuned::sha256_hex(&base).unwrap();
    let dir = common::temp_dir("finetuned-window");
    let path = dir.join("tuned.safetensors");
    let tensor =
        || vec![("mask_decoder.iou_token.weight".to_string(), Tensor::zeros([1, 256], (Kind::Float, Device::Cpu)))];
    let with_window = |w: &str| {
        let mut m = meta(&sha);
        m.insert(finetuned::META_INPUT_WINDOW.to_string(), w.to_string());
        m
    };
    // Three windows, one per input channel: the loaded model feeds its encoder those.
    finetuned::write(&path, &tensor(), &with_window("-160,240/-500,1000/-1350,150")).unwrap();
    let (sam, _) = Sam::load(lite(), &path, Device::Cpu).unwrap();
    assert_eq!(sam.config.window, InputWindow::parse("-160,240/-500,1000/-1350,150").unwrap());
    assert_eq!(sam.config.window.as_grey(), None);
    // No window named: RadSAM's, grey.
    finetuned::write(&path, &tensor(), &meta(&sha)).unwrap();
    assert_eq!(Sam::load(lite(), &path, Device::Cpu).unwrap().0.config.window, InputWindow::grey(RADSAM_WINDOW));
    // A window that does not parse: the file is refused by name, not run on a default.
    for bad in ["-160,240/-500,1000", "wide"] {
        finetuned::write(&path, &tensor(), &with_window(bad)).unwrap();
        match Sam::load(lite(), &path, Device::Cpu) {
            Err(CheckpointError::Unreadable { path: p, reason }) => {
                assert_eq!(p, path);
                assert!(reason.contains(finetuned::META_INPUT_WINDOW), "{reason}");
            }
            other => panic!("{bad}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn the_committed_radsam_weights_load_by_name() {
    let path = radsam::assets::weights_path("radsam");
    assert!(path.exists(), "models/radsam.safetensors is committed");
    let meta = finetuned::read_metadata(&path).unwrap();
    assert_eq!(meta[finetuned::META_BASE_MODEL], "lite_medsam");
    assert!(meta.contains_key("radsam.training_settings"));
    let (radsam, _) = Sam::load(ModelConfig::by_name("radsam").unwrap(), &path, Device::Cpu).unwrap();
    let (lite, _) = Sam::load(lite(), &common::weights("lite_medsam"), Device::Cpu).unwrap();
    let (r, l) = (radsam.var_store().variables(), lite.var_store().variables());
    let diff = |n: &str| (&r[n] - &l[n]).abs().max().double_value(&[]);
    assert!(diff("prompt_encoder.mask_downscaling.0.weight") > 0.0, "the mask-prompt path was trained");
    assert_eq!(diff("image_encoder.neck.0.weight"), 0.0, "the encoder is LiteMedSAM's");
    // v10: v7 (v1's decoder with v3's as the correction head, bench/compose_radsam_v7.sh) with
    // radsam-mobile-v1 as its point assist (bench/compose_radsam_v10.sh).
    assert!(radsam.has_correction_head());
    assert!(meta[finetuned::META_CORRECTION_FROM].starts_with("models/radsam-v3.safetensors sha256:"));
    assert_eq!(radsam.point_assist().map(|a| a.config.name.as_str()), Some("mobile_sam"));
    assert!(meta[finetuned::META_POINT_ASSIST_FROM].starts_with("models/radsam-mobile-v1.safetensors sha256:"));
    // Files of half-precision tensors, MBs: fit to commit (three decoders and a prompt encoder each, 24 MB).
    assert!(std::fs::metadata(&path).unwrap().len() < 30 << 20);
}

#[test]
fn the_encoder_training_path_matches_inference_and_gets_gradients() {
    radsam::allocator::keep_freed_memory();
    let (mut sam, _) = Sam::load(lite(), &common::weights("lite_medsam"), Device::Cpu).unwrap();
    let input = Tensor::rand([1, 3, 256, 256], (Kind::Float, Device::Cpu));
    let fused = sam.encode(&input);
    let params = sam.set_trainable(true);
    assert!(params.iter().any(|(n, _)| n.starts_with("image_encoder.")));
    assert!(!params
        .iter()
        .any(|(n, _)| n.ends_with("running_mean") || n.ends_with("positional_encoding_gaussian_matrix")));
    // Unfolded batch norms (inference statistics) give the fused path's embedding.
    let unfused = sam.encode_train(&input);
    let d = (&unfused - &fused).abs().max().double_value(&[]);
    assert!(d < 1e-3, "unfused vs fused: {d}");
    unfused.sum(Kind::Float).backward();
    let with_grad = params
        .iter()
        .filter(|(n, t)| {
            n.starts_with("image_encoder.")
                && t.grad().defined()
                && t.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0
        })
        .count();
    assert!(with_grad > 100, "{with_grad} encoder tensors got gradients");
}

/// Decodes one point prompt on a fixed random embedding: the four masks' logits.
fn answer(sam: &Sam, correction: bool) -> Tensor {
    // A fixed pattern, not the global RNG, which the other tests of this file draw from in parallel.
    let embedding = Tensor::arange(256 * 64 * 64, (Kind::Float, Device::Cpu)).sin().view([1, 256, 64, 64]);
    let prompt = radsam::model::PromptBatch {
        points: Some((
            Tensor::from_slice(&[100.0f32, 120.0]).view([1, 1, 2]),
            Tensor::from_slice(&[1i64]).view([1, 1]),
        )),
        ..Default::default()
    };
    let pred = if correction { sam.decode_correction(&embedding, &prompt) } else { sam.decode(&embedding, &prompt) };
    pred.low_res_logits
}

#[test]
fn a_composed_file_answers_clicks_by_its_correction_head_and_all_else_by_its_own() {
    let dir = common::temp_dir("compose");
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let (main, edit) = (models.join("radsam-v1.safetensors"), models.join("radsam-v3.safetensors"));
    let composed = dir.join("composed.safetensors");
    finetuned::compose(&main, &edit, &composed).unwrap();
    let radsam = || ModelConfig::by_name("radsam").unwrap();
    let load = |p: &std::path::Path| Sam::load(radsam(), p, Device::Cpu).unwrap().0;
    let (both, v1, v3) = (load(&composed), load(&main), load(&edit));
    assert!(both.has_correction_head() && !v1.has_correction_head());
    let same = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]) == 0.0;
    assert!(same(&answer(&both, false), &answer(&v1, false)), "the first prompt and the carry: v1's decoder");
    assert!(same(&answer(&both, true), &answer(&v3, false)), "clicked slices: v3's decoder, bit for bit");
    assert!(!same(&answer(&both, true), &answer(&both, false)), "two different decoders");
    assert!(same(&answer(&v1, true), &answer(&v1, false)), "without a correction head, one decoder");
    let meta = finetuned::read_metadata(&composed).unwrap();
    assert!(meta[finetuned::META_CORRECTION_FROM].contains(&finetuned::sha256_hex(&edit).unwrap()));
    assert_eq!(meta["radsam.training_settings"], finetuned::read_metadata(&main).unwrap()["radsam.training_settings"]);
    assert_eq!(
        meta[finetuned::META_CORRECTION_SETTINGS],
        finetuned::read_metadata(&edit).unwrap()["radsam.training_settings"]
    );

    // Refused by name: a head on another input window (v4: three windows), a file composed
    // already, a base checkpoint that is no fine-tuned file.
    let out = dir.join("refused.safetensors");
    let refused = |a: &std::path::Path, b: &std::path::Path| finetuned::compose(a, b, &out).unwrap_err();
    let e = refused(&main, &models.join("radsam-v4.safetensors"));
    assert!(matches!(e, finetuned::ComposeError::Differ { key: finetuned::META_INPUT_WINDOW, .. }), "{e}");
    assert!(matches!(refused(&composed, &edit), finetuned::ComposeError::AlreadyComposed { .. }));
    let base = common::weights("lite_medsam");
    assert!(matches!(refused(&main, &base), finetuned::ComposeError::NotFineTuned { .. }));
    assert!(!out.exists(), "nothing written for a refused composition");

    // A correction head that lacks a tensor would decode with random weights: the file is refused,
    // naming the tensor.
    let mut tensors = Tensor::read_safetensors(&composed).unwrap();
    let dropped = "edit.mask_decoder.iou_token.weight";
    tensors.retain(|(n, _)| n != dropped);
    let partial = dir.join("partial.safetensors");
    finetuned::write(&partial, &tensors, &meta).unwrap();
    match Sam::load(radsam(), &partial, Device::Cpu) {
        Err(CheckpointError::Missing { name, .. }) => assert_eq!(name, dropped),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn a_point_assist_is_a_whole_second_model_loaded_on_its_own_base() {
    let dir = common::temp_dir("point-assist");
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let (main, assist) = (models.join("radsam-v7.safetensors"), models.join("radsam-mobile-v1.safetensors"));
    let composed = dir.join("composed.safetensors");
    finetuned::compose_point_assist(&main, &assist, &composed).unwrap();
    let named = |name: &str| ModelConfig::by_name(name).unwrap();
    let load = |name: &str, p: &std::path::Path| Sam::load(named(name), p, Device::Cpu).unwrap().0;
    let (both, v7, mobile) = (load("radsam", &composed), load("radsam", &main), load("mobile_sam", &assist));
    let point_assist = both.point_assist().expect("the composed file holds a point assist");
    assert!(v7.point_assist().is_none() && point_assist.point_assist().is_none());
    assert_eq!(point_assist.config, mobile.config, "MobileSAM's architecture, input size and window");
    assert_eq!(both.config, v7.config);
    let same = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]) == 0.0;
    // Bit for bit: this model is v7 (both heads), the assist is radsam-mobile-v1, encoder included.
    assert!(same(&answer(&both, false), &answer(&v7, false)) && same(&answer(&both, true), &answer(&v7, true)));
    assert!(same(&answer(point_assist, false), &answer(&mobile, false)));
    assert!(!same(&answer(point_assist, false), &answer(&both, false)), "two different models");
    assert_eq!(point_assist.encoder_fingerprint(), mobile.encoder_fingerprint());
    let meta = finetuned::read_metadata(&composed).unwrap();
    assert!(meta[finetuned::META_POINT_ASSIST_FROM].contains(&finetuned::sha256_hex(&assist).unwrap()));
    assert_eq!(meta[finetuned::META_POINT_ASSIST_MODEL], "mobile_sam");
    assert_eq!(meta[finetuned::META_BASE_MODEL], "lite_medsam", "the main model's metadata as it was");

    // Refused by name: a file that has an assist already, an assist with a correction head (v7),
    // a base checkpoint that is no fine-tuned file; nothing written.
    let out = dir.join("refused.safetensors");
    let refused = |a: &std::path::Path, b: &std::path::Path| finetuned::compose_point_assist(a, b, &out).unwrap_err();
    assert!(matches!(refused(&composed, &assist), finetuned::ComposeError::AlreadyComposed { .. }));
    assert!(matches!(refused(&main, &main), finetuned::ComposeError::AlreadyComposed { .. }));
    assert!(matches!(refused(&main, &common::weights("lite_medsam")), finetuned::ComposeError::NotFineTuned { .. }));
    assert!(!out.exists());

    // The assist's own base is checked as a fine-tuned file's is: another base file is refused.
    let mut wrong = meta.clone();
    wrong.insert(finetuned::META_POINT_ASSIST_BASE_SHA256.into(), "0".repeat(64));
    let tensors = Tensor::read_safetensors(&composed).unwrap();
    let mismatched = dir.join("mismatched.safetensors");
    finetuned::write(&mismatched, &tensors, &wrong).unwrap();
    assert!(matches!(Sam::load(named("radsam"), &mismatched, Device::Cpu), Err(CheckpointError::BaseMismatch { .. })));
    // An assist tensor its model lacks is refused by name, as any fine-tuned tensor.
    let mut foreign = tensors;
    foreign.push(("assist.mask_decoder.nonsense".into(), Tensor::zeros([2], (Kind::Float, Device::Cpu))));
    finetuned::write(&mismatched, &foreign, &meta).unwrap();
    match Sam::load(named("radsam"), &mismatched, Device::Cpu) {
        Err(CheckpointError::Unexpected { name, .. }) => assert_eq!(name, "mask_decoder.nonsense"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn a_file_moved_toward_its_base_lies_on_the_line_between_them() {
    let dir = common::temp_dir("toward-base");
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let v1 = models.join("radsam-v1.safetensors");
    let base = common::weights("lite_medsam");
    let read = |p: &std::path::Path| -> BTreeMap<String, Tensor> {
        Tensor::read_safetensors(p).unwrap().into_iter().map(|(n, t)| (n, t.to_kind(Kind::Float))).collect()
    };
    let (tuned, start) = (read(&v1), read(&base));
    let half = dir.join("half.safetensors");
    finetuned::toward_base(&v1, &base, 0.5, &half).unwrap();
    let moved = read(&half);
    assert_eq!(moved.len(), tuned.len(), "the same tensors as the fine-tuned file");
    let mut changed = 0;
    for (name, t) in &tuned {
        let expected = (&start[name] + t) / 2.0;
        // Half precision: within one rounding step of the midpoint.
        let tolerance = expected.abs().max().double_value(&[]) * 1e-3 + 1e-6;
        assert!((&moved[name] - &expected).abs().max().double_value(&[]) <= tolerance, "{name}: not the midpoint");
        changed += usize::from((t - &start[name]).abs().max().double_value(&[]) > 0.0);
    }
    assert!(changed > 50, "v1 changed most tensors of its base ({changed})");
    let meta = finetuned::read_metadata(&half).unwrap();
    assert_eq!(meta[finetuned::META_TOWARD_BASE_WEIGHT], "0.5");
    assert!(meta[finetuned::META_TOWARD_BASE_FROM].contains(&finetuned::sha256_hex(&v1).unwrap()));
    assert_eq!(meta[finetuned::META_BASE_MODEL], "lite_medsam", "it still applies to the same base");
    // Weight 1 is the fine-tuned file, tensor for tensor.
    let same = dir.join("same.safetensors");
    finetuned::toward_base(&v1, &base, 1.0, &same).unwrap();
    for (name, t) in read(&same) {
        assert_eq!((&t - &tuned[&name]).abs().max().double_value(&[]), 0.0, "{name}");
    }
    // Loads as any fine-tuned file.
    Sam::load(ModelConfig::by_name("radsam").unwrap(), &half, Device::Cpu).unwrap();

    // Refused by name: a weight outside [0, 1], a composed file (v7: a correction head), another
    // base than the recorded one; nothing written.
    let out = dir.join("refused.safetensors");
    let e = finetuned::toward_base(&v1, &base, 1.5, &out).unwrap_err();
    assert!(matches!(e, finetuned::ComposeError::Weight { .. }), "{e}");
    let e = finetuned::toward_base(&models.join("radsam-v7.safetensors"), &base, 0.5, &out).unwrap_err();
    assert!(matches!(e, finetuned::ComposeError::AlreadyComposed { .. }), "{e}");
    let e = finetuned::toward_base(&v1, &common::weights("mobile_sam"), 0.5, &out).unwrap_err();
    assert!(matches!(e, finetuned::ComposeError::Checkpoint(CheckpointError::BaseMismatch { .. })), "{e}");
    assert!(!out.exists(), "nothing written for a refused move");
}
