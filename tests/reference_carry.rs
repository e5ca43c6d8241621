//! The reference pipeline (`Carry::ReferenceBox`: LiteMedSAM's own 3D inference) against its
//! PyTorch implementation (bench/propagation_reference.py with CARRY `reference`) on a whole
//! propagation of the liver of the sample CT, with the shipped LiteMedSAM.

mod common;

use common::{python, temp_dir, weights};
use radsam::mask_stats::dice;
use radsam::model::{ModelConfig, Sam};
use radsam::prompt::{bounding_box, SlicePrompt};
use radsam::segment::{Carry, MaskChoice, Segmenter, VolumeSession};
use radsam::volume::read_nifti;
use tch::Device;

/// A uint8 .npy array (numpy's format, version 1 or 2 header) as (shape, data).
fn read_npy_u8(path: &std::path::Path) -> (Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(header.contains("'|u1'") && header.contains("'fortran_order': False"), "{header}");
    let shape_text = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> =
        shape_text.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect();
    (shape, bytes[start + header_len..].to_vec())
}

#[test]
fn reference_pipeline_matches_its_pytorch_implementation_and_never_stops() {
    radsam::allocator::keep_freed_memory();
    let sam = Sam::load(ModelConfig::by_name("lite_medsam").unwrap(), &weights("lite_medsam"), Device::Cpu).unwrap().0;
    let data = radsam::assets::sample_data_dir();
    let ct = read_nifti(&data.join("example_ct.nii.gz")).unwrap();
    let labels = read_nifti(&data.join("example_seg_fast_force_split.nii.gz")).unwrap();
    let liver: Vec<u8> = labels.data.iter().map(|&v| (v == 5.0) as u8).collect();
    let (lo, hi, start) = (69, 111, 106); // the liver's true boundaries and largest slice
    let w = ct.grid.plane_shape().1;
    let session = VolumeSession::new(&sam, &ct, (lo, hi), 16, &mut |_, _| {}).unwrap();
    let prompt = SlicePrompt { bbox: bounding_box(&ct.grid.extract(&liver, start), w), ..Default::default() };

    // Box carry stops where the shipped model loses the liver (slice 95); the reference pipeline
    // falls back on the prompted box and goes on to the boundary.
    let mut boxed = Segmenter::new(&session, Carry::Box, MaskChoice::Primary, None);
    boxed.start(start, &prompt).unwrap();
    assert!(!boxed.stops().is_empty(), "box carry stops on this liver");
    let mut reference = Segmenter::new(&session, Carry::ReferenceBox, MaskChoice::Primary, None);
    reference.start(start, &prompt).unwrap();
    assert!(reference.stops().is_empty(), "the reference pipeline never stops: {:?}", reference.stops());
    assert_eq!(reference.states().len(), hi - lo + 1, "every slice between the boundaries is decoded");
    println!(
        "liver Dice: box carry {:.3}, reference pipeline {:.3}",
        dice(&boxed.mask(), &liver),
        dice(&reference.mask(), &liver)
    );

    // The same propagation in PyTorch, slice by slice.
    let dir = temp_dir("reference-carry");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/propagation_reference.py");
    let out = std::process::Command::new(python())
        .arg(&script)
        .args(["5", &lo.to_string(), &hi.to_string(), "2"])
        .arg(dir.join("ref.json"))
        .arg(dir.join("ref.npy"))
        .arg("reference")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (shape, expected) = read_npy_u8(&dir.join("ref.npy"));
    let plane = shape[1] * shape[2];
    assert_eq!(plane, ct.grid.extract(&liver, start).len());
    for k in lo..=hi {
        let ours = &reference.states()[&k].mask;
        let theirs = &expected[k * plane..(k + 1) * plane];
        let agree = dice(ours, theirs);
        let both_empty = ours.iter().all(|&v| v == 0) && theirs.iter().all(|&v| v == 0);
        assert!(
            both_empty || agree > 0.99,
            "slice {k}: Rust and PyTorch reference pipelines agree only to Dice {agree:.4}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
