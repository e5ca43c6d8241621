//! Volume-level prompting, 3D editing and `radsam segment` on the real sample CT.

use radsam::error::Coded;
mod common;

use common::{temp_dir, weights};
use radsam::mask_stats::dice;
use radsam::model::{ModelConfig, Sam};
use radsam::prompt::{bounding_box, interior_point, BoxPrompt, Click, SlicePrompt};
use radsam::segment::{
    Carry, CarryCue, GuardReason, GuardSettings, MaskChoice, SegmentError, Segmenter, Snapshot, Stop, VolumeSession,
};
use radsam::volume::read_nifti;
use std::process::Command;
use tch::Device;

fn data(name: &str) -> std::path::PathBuf {
    radsam::assets::sample_data_dir().join(name)
}

#[test]
fn propagation_editing_and_replay_on_the_liver() {
    radsam::allocator::keep_freed_memory();
    let sam = Sam::load(ModelConfig::by_name("lite_medsam").unwrap(), &weights("lite_medsam"), Device::Cpu).unwrap().0;
    let ct = read_nifti(&data("example_ct.nii.gz")).unwrap();
    let labels = read_nifti(&data("example_seg_fast_force_split.nii.gz")).unwrap();
    let liver: Vec<u8> = labels.data.iter().map(|&v| (v == 5.0) as u8).collect();
    let (lo, hi, start) = (69, 111, 106); // the liver's true boundaries and largest slice
    let w = ct.grid.plane_shape().1;
    let mut progress = Vec::new();
    let session = VolumeSession::new(&sam, &ct, (hi, lo), 16, &mut |d, n| progress.push((d, n))).unwrap();
    assert_eq!(progress.last(), Some(&(43, 43)), "boundaries in either order; progress reported");
    let prompt = SlicePrompt { bbox: bounding_box(&ct.grid.extract(&liver, start), w), ..Default::default() };

    // Box carry with the shipped LiteMedSAM follows the liver over many slices.
    let mut boxed = Segmenter::new(&session, Carry::Box, MaskChoice::Primary, None);
    boxed.start(start, &prompt).unwrap();
    let d_box = dice(&boxed.mask(), &liver);
    let covered: Vec<usize> =
        boxed.states().iter().filter(|(_, s)| s.mask.iter().any(|&v| v > 0)).map(|(&k, _)| k).collect();
    println!("box carry: Dice {d_box:.3}, {} slices, stops {:?}", covered.len(), boxed.stops());
    assert!(d_box > 0.4, "box carry Dice {d_box}");
    assert!(covered.len() >= 10, "propagated over {} slices", covered.len());
    assert!(covered.iter().all(|&k| (lo..=hi).contains(&k)), "never beyond the boundaries");
    // Every gap in coverage is explained by a reported stop.
    for stop in boxed.stops() {
        assert!(boxed.states().get(&stop.empty_slice).is_some_and(|s| s.mask.iter().all(|&v| v == 0)));
    }

    // Mask carry runs too (the shipped model was not trained on mask prompts: the paper's point).
    let mut carried = Segmenter::new(&session, Carry::Mask, MaskChoice::BestPredictedIou, None);
    carried.start(start, &prompt).unwrap();
    println!("mask carry (shipped LiteMedSAM): Dice {:.3}", dice(&carried.mask(), &liver));

    // Editing: clicks below the initial slice re-propagate downstream only (towards `lo`): the
    // initial slice (an anchor), everything above it and the slices between a click and the
    // initial slice that hold a mask are untouched; replaying the same clicks on a fresh
    // segmenter gives the same mask.
    let masks = |seg: &Segmenter, range: std::ops::RangeInclusive<usize>| -> Vec<Vec<u8>> {
        range.map(|k| seg.states().get(&k).map(|s| s.mask.clone()).unwrap_or_default()).collect()
    };
    let upstream_before = masks(&boxed, 101..=hi);
    assert!(upstream_before[..start - 101].iter().all(|m| m.iter().any(|&v| v != 0)), "box carry covers 101..{start}");
    let clicks = [
        Click { slice: 100, x: 30.0, y: 50.0, positive: true },
        Click { slice: 100, x: 100.0, y: 20.0, positive: false },
        Click { slice: 90, x: 35.0, y: 55.0, positive: true },
    ];
    let decoded_before = boxed.decoded_slices;
    boxed.add_click(clicks[0]).unwrap();
    assert!(boxed.decoded_slices - decoded_before <= 1 + (100 - lo), "the clicked slice and the slices below it only");
    for c in &clicks[1..] {
        boxed.add_click(*c).unwrap();
    }
    assert_eq!(upstream_before, masks(&boxed, 101..=hi), "slices upstream of the clicks are unchanged");
    // A click past a stop (box carry lost the liver at slice 95 going down): the slices upstream
    // that hold a mask are kept; filling the empty ones from the click stops, and is reported, where
    // a result comes out empty (here at once: the shipped model answers a lone point with nothing).
    let mut gap = Segmenter::new(&session, Carry::Box, MaskChoice::Primary, None);
    gap.start(start, &prompt).unwrap();
    assert_eq!(gap.stops(), [Stop { direction: -1, empty_slice: 95 }], "the shipped model loses the liver at 95");
    assert!((lo..95).all(|k| !gap.states().contains_key(&k)), "nothing below a stop");
    let kept = masks(&gap, 96..=hi);
    let gap_saved = gap.snapshot("gap").expect("a volume-level session");
    let centre = interior_point(&ct.grid.extract(&liver, 90), w).unwrap();
    gap.add_click(Click { slice: 90, x: centre.x, y: centre.y, positive: true }).unwrap();
    assert_eq!(kept, masks(&gap, 96..=hi), "slices holding a mask upstream are kept");
    let first_empty = (90..=95)
        .find(|k| gap.states().get(k).is_none_or(|s| s.mask.iter().all(|&v| v == 0)))
        .expect("slice 95 was empty");
    assert!(
        gap.stops().contains(&Stop { direction: 1, empty_slice: first_empty }),
        "filling up stopped at {first_empty}: {:?}",
        gap.stops()
    );
    if first_empty == 90 {
        assert!(
            gap.stops().contains(&Stop { direction: -1, empty_slice: 90 }) && !gap.states().contains_key(&89),
            "nothing carried down from an empty slice"
        );
    }
    assert!(
        gap.stops().iter().all(|s| gap.states()[&s.empty_slice].mask.iter().all(|&v| v == 0)),
        "every reported stop is an empty slice"
    );

    let mut replay = Segmenter::new(&session, Carry::Box, MaskChoice::Primary, None);
    replay.start(start, &prompt).unwrap();
    for c in clicks {
        replay.add_click(c).unwrap();
    }
    assert_eq!(replay.mask(), boxed.mask(), "a stateless replay of the clicks equals the interactive session");
    assert_eq!(replay.clicks(), 3);

    // A saved session (a revision's parent) taken up by a fresh segmenter and given the remaining
    // clicks equals the replay of all of them, bit for bit: masks, stops, IoUs and the carried
    // low-resolution masks that later clicks build on; with fewer slices decoded.
    let dir = common::temp_dir("resume");
    let same = |a: &Segmenter, b: &Segmenter, what: &str| {
        assert_eq!(a.mask(), b.mask(), "{what}: masks");
        assert_eq!(a.stops(), b.stops(), "{what}: stops");
        assert_eq!(a.states().keys().collect::<Vec<_>>(), b.states().keys().collect::<Vec<_>>(), "{what}: slices");
        for (k, s) in a.states() {
            let t = &b.states()[k];
            assert!(s.low_res.equal(&t.low_res) && s.iou == t.iou && s.chosen == t.chosen, "{what}: slice {k}");
        }
    };
    for carry in [Carry::Box, Carry::Mask] {
        let mut parent = Segmenter::new(&session, carry, MaskChoice::Primary, None);
        parent.start(start, &prompt).unwrap();
        parent.add_click(clicks[0]).unwrap();
        let path = dir.join(format!("liver-{}.session.gz", carry.name()));
        parent.snapshot("liver inputs").unwrap().save(&path).unwrap();
        let saved = Snapshot::load(&path).unwrap();
        saved.check("liver inputs", &clicks).unwrap();
        let mut resumed = Segmenter::new(&session, carry, MaskChoice::Primary, None);
        resumed.resume(&saved).unwrap();
        for c in &clicks[saved.clicks.len()..] {
            resumed.add_click(*c).unwrap();
        }
        let mut replayed = Segmenter::new(&session, carry, MaskChoice::Primary, None);
        replayed.start(start, &prompt).unwrap();
        for c in clicks {
            replayed.add_click(c).unwrap();
        }
        same(&resumed, &replayed, carry.name());
        assert_eq!(resumed.clicks(), 3);
        // The replay's decoding minus the parent's: the new clicks' slices only.
        assert_eq!(resumed.decoded_slices, replayed.decoded_slices - parent.decoded_slices, "{carry:?}");
        assert!(resumed.decoded_slices < replayed.decoded_slices, "{carry:?}");
        // Its own saved session is the replay's: a chain of revisions resumes the last one.
        assert_eq!(resumed.snapshot("liver inputs"), replayed.snapshot("liver inputs"));
    }
    // With a stop saved: the click past it fills the same slices and reports the same stops.
    let mut resumed_gap = Segmenter::new(&session, Carry::Box, MaskChoice::Primary, None);
    resumed_gap.resume(&gap_saved).unwrap();
    resumed_gap.add_click(Click { slice: 90, x: centre.x, y: centre.y, positive: true }).unwrap();
    same(&resumed_gap, &gap, "past a stop");
    // A session saved for another volume grid or outside these boundaries is refused.
    let narrow = VolumeSession::lazy(&sam, &ct, (100, hi), Default::default()).unwrap();
    assert!(Segmenter::new(&narrow, Carry::Box, MaskChoice::Primary, None).resume(&gap_saved).is_err());
    std::fs::remove_dir_all(&dir).ok();

    // Slice-level editing: a click refines its own slice only, from the slice's own prompt.
    let prompts: std::collections::BTreeMap<usize, SlicePrompt> = (95..=105)
        .map(|k| (k, SlicePrompt { bbox: bounding_box(&ct.grid.extract(&liver, k), w), ..Default::default() }))
        .collect();
    let mut per_slice = Segmenter::new(&session, Carry::Box, MaskChoice::Primary, None);
    per_slice.slice_level(&prompts).unwrap();
    let before: Vec<Vec<u8>> = (95..=105).map(|k| per_slice.states()[&k].mask.clone()).collect();
    per_slice.add_click(Click { slice: 100, x: 100.0, y: 20.0, positive: false }).unwrap();
    let after: Vec<Vec<u8>> = (95..=105).map(|k| per_slice.states()[&k].mask.clone()).collect();
    for (i, k) in (95..=105).enumerate().filter(|&(_, k)| k != 100) {
        assert!(before[i] == after[i], "slice {k}: only the clicked slice may change");
    }
    assert_eq!(per_slice.states().len(), 11, "no propagation beyond the prompted slices");
    assert_eq!(per_slice.decoded_slices, 12, "11 slices, then the clicked one again");

    // Bad prompts and clicks: typed errors, nothing changed.
    let before = boxed.mask();
    let code = |r: Result<(), SegmentError>| r.unwrap_err().code();
    assert_eq!(
        code(boxed.add_click(Click { slice: 50, x: 3.0, y: 3.0, positive: true })),
        "PROMPT_SLICE_OUTSIDE_BOUNDARIES"
    );
    assert_eq!(code(boxed.add_click(Click { slice: 100, x: 500.0, y: 3.0, positive: true })), "PROMPT_INVALID");
    assert_eq!(
        code(boxed.start(
            start,
            &SlicePrompt { bbox: Some(BoxPrompt { x0: 5.0, y0: 5.0, x1: 5.0, y1: 9.0 }), ..Default::default() }
        )),
        "PROMPT_INVALID"
    );
    assert_eq!(boxed.mask(), before);
    let mut fresh = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None);
    assert_eq!(code(fresh.add_click(clicks[0])), "PROMPT_NOT_STARTED");
    assert_eq!(code(fresh.start(lo - 1, &prompt)), "PROMPT_SLICE_OUTSIDE_BOUNDARIES");
    assert!(matches!(
        VolumeSession::new(&sam, &ct, (100, 112), 8, &mut |_, _| {}),
        Err(SegmentError::BoundaryOutside { slice: 112, .. })
    ));
}

#[test]
fn cli_segment_runs_a_job_file_on_dicom_and_refuses_bad_jobs() {
    radsam::allocator::keep_freed_memory();
    let dir = temp_dir("segment-job");
    // The liver of the validation scan (DICOM): its box on slice 10 in the volume's own
    // orientation (the reference was written on a flipped grid).
    let job = serde_json::json!({
        "schema_version": 1, "job_id": "test-1", "correlation_id": "study-7",
        "volume_uri": format!("file://{}", data("example_ct_dicom").display()),
        "targets": [{
            "label": "liver",
            "initial_prompt": {"slice": 10, "box": [107, 196, 269, 374]},
            "boundaries": {"top": 4, "bottom": 16},
            "correction_clicks": [{"slice": 6, "x": 150, "y": 250, "positive": true}],
            "reference_mask_uri": data("example_seg_dicom.nii.gz").display().to_string(),
            "reference_label": 5,
            "carry": "box"
        }]
    });
    std::fs::write(dir.join("job.json"), job.to_string()).unwrap();
    // This test's own embedding cache: the first run finds nothing in it.
    let cache = dir.join("embeddings");
    let run_with = |job: &std::path::Path, out: &std::path::Path, flags: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_radsam"))
            .env("RADSAM_CACHE_EMBEDDINGS", &cache)
            .args(["segment", "--job"])
            .arg(job)
            .arg("--overlays")
            .args(flags)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let run = |job: &std::path::Path, out: &std::path::Path| run_with(job, out, &[]);
    let ok = run(&dir.join("job.json"), &dir.join("out"));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/result.json")).unwrap()).unwrap();
    let t = &result["targets"][0];
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    assert_eq!(result["correlation_id"], "study-7");
    assert!(
        result["model_version"].as_str().unwrap().starts_with("radsam@sha256:"),
        "the default model is the project's RadSAM"
    );
    assert_eq!((result["encoded_slices"].as_u64(), result["cached_slices"].as_u64()), (Some(13), Some(0)));
    assert_eq!(t["clicks_applied"], 1);
    assert!(t["dice"].as_f64().unwrap() > 0.5, "liver Dice {}", t["dice"]);
    assert!(t["volume_ml"].as_f64().unwrap() > 50.0);
    for f in
        ["liver.nii.gz", "labels.nii.gz", "seg.dcm", "overlays/liver_slice_0010.png", "overlays/liver_slice_0006.png"]
    {
        assert!(dir.join("out").join(f).exists(), "{f}");
    }

    // The same job again (a dashboard resubmitting it): every slice from the embedding cache,
    // the same mask to the voxel, a fraction of the encoding time. Then a correction (one more
    // click): still nothing to encode.
    let mask = |out: &str| {
        let limits = radsam::volume::ReadLimits::default();
        radsam::volume::Volume::open(&dir.join(out).join("liver.nii.gz"), None, &limits).unwrap().data
    };
    let again = run(&dir.join("job.json"), &dir.join("out-again"));
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let warm: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out-again/result.json")).unwrap()).unwrap();
    assert_eq!((warm["encoded_slices"].as_u64(), warm["cached_slices"].as_u64()), (Some(0), Some(13)));
    assert!(String::from_utf8_lossy(&again.stderr).contains("13 more read from the embedding cache"));
    assert!(mask("out-again") == mask("out"), "a warm run returns the cold run's mask");
    let (cold_s, warm_s) = (result["encode_seconds"].as_f64().unwrap(), warm["encode_seconds"].as_f64().unwrap());
    assert!(warm_s < cold_s / 3.0, "reading 13 embeddings took {warm_s:.2} s, encoding them {cold_s:.2} s");
    // A damaged entry (one flipped byte in a slice's embedding) is found, deleted and encoded
    // again: the mask is still the cold run's, bit for bit.
    let entries: Vec<std::path::PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 13, "one entry per slice");
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&entries[0], &bytes).unwrap();
    let repaired = run(&dir.join("job.json"), &dir.join("out-repaired"));
    let said = String::from_utf8_lossy(&repaired.stderr);
    assert!(repaired.status.success() && said.contains("is unusable") && said.contains("checksum"), "{said}");
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out-repaired/result.json")).unwrap()).unwrap();
    assert_eq!((again["encoded_slices"].as_u64(), again["cached_slices"].as_u64()), (Some(1), Some(12)));
    assert!(mask("out-repaired") == mask("out"), "the recomputed slice gives the cold run's mask");
    let mut corrected = job.clone();
    corrected["targets"][0]["correction_clicks"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"slice": 12, "x": 160, "y": 260, "positive": true}));
    std::fs::write(dir.join("corrected.json"), corrected.to_string()).unwrap();
    let fixed = run(&dir.join("corrected.json"), &dir.join("out-corrected"));
    assert!(fixed.status.success(), "{}", String::from_utf8_lossy(&fixed.stderr));
    let fixed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out-corrected/result.json")).unwrap()).unwrap();
    assert_eq!((fixed["encoded_slices"].as_u64(), fixed["targets"][0]["clicks_applied"].as_u64()), (Some(0), Some(2)));
    // With --correction-carry the slices carried on from the clicks come from the shipped model's
    // correction head: another mask on some of them, same clicks applied.
    let carried = run_with(&dir.join("corrected.json"), &dir.join("out-carried"), &["--correction-carry"]);
    assert!(carried.status.success(), "{}", String::from_utf8_lossy(&carried.stderr));
    let carried: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out-carried/result.json")).unwrap()).unwrap();
    assert_eq!(carried["targets"][0]["clicks_applied"].as_u64(), Some(2));
    // result.json records the setting the masks were made with.
    assert_eq!((fixed["correction_carry"].as_bool(), carried["correction_carry"].as_bool()), (Some(false), Some(true)));
    assert!(mask("out-carried") != mask("out-corrected"), "--correction-carry changed no slice");
    // With mask carry and a negative click inside the liver, the negative erase (on by default)
    // takes the click's region out of the slice's mask prompt: the mask loses voxels (the slice
    // and those carried on from it) against `--negative-erase false`; result.json says which.
    let mut negative = job.clone();
    negative["targets"][0]["carry"] = serde_json::json!("mask");
    negative["targets"][0]["correction_clicks"] =
        serde_json::json!([{"slice": 12, "x": 188, "y": 285, "positive": false}]);
    std::fs::write(dir.join("negative.json"), negative.to_string()).unwrap();
    let kept = run_with(&dir.join("negative.json"), &dir.join("out-negative"), &["--negative-erase", "false"]);
    let erased = run(&dir.join("negative.json"), &dir.join("out-erased"));
    for out in [&kept, &erased] {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let settings = |out: &str| {
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(out).join("result.json")).unwrap()).unwrap();
        (r["negative_erase"].as_bool(), r["targets"][0]["clicks_applied"].as_u64())
    };
    assert_eq!((settings("out-negative"), settings("out-erased")), ((Some(false), Some(1)), (Some(true), Some(1))));
    let voxels = |out: &str| mask(out).iter().filter(|&&v| v != 0.0).count();
    assert!(voxels("out-erased") < voxels("out-negative"), "the negative erase took nothing out");
    // The carry ensemble (off by default, `--carry-ensemble`) averages each mask-carried slice
    // with the reference box's answer: another mask than the mask alone's; result.json records
    // which.
    let averaged = run_with(&dir.join("negative.json"), &dir.join("out-averaged"), &["--carry-ensemble"]);
    assert!(averaged.status.success(), "{}", String::from_utf8_lossy(&averaged.stderr));
    let ensemble_setting = |out: &str| {
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(out).join("result.json")).unwrap()).unwrap();
        r["carry_ensemble"].as_bool()
    };
    assert_eq!((ensemble_setting("out-erased"), ensemble_setting("out-averaged")), (Some(false), Some(true)));
    assert!(mask("out-averaged") != mask("out-erased"), "--carry-ensemble changed no slice");
    // A point alone on the liver: answered by the shipped model's point assist (radsam-mobile-v1,
    // with its own encoder) by default, by RadSAM itself with `--point-assist false`; result.json
    // says which, and the masks differ.
    let mut pointed = job.clone();
    pointed["targets"][0]["initial_prompt"] =
        serde_json::json!({"slice": 10, "points": [{"x": 188, "y": 285, "positive": true}]});
    pointed["targets"][0]["correction_clicks"] = serde_json::json!([]);
    pointed["targets"][0]["carry"] = serde_json::json!("mask");
    std::fs::write(dir.join("pointed.json"), pointed.to_string()).unwrap();
    let assisted = run(&dir.join("pointed.json"), &dir.join("out-assisted"));
    let alone = run_with(&dir.join("pointed.json"), &dir.join("out-alone"), &["--point-assist", "false"]);
    for out in [&assisted, &alone] {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let result = |out: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(out).join("result.json")).unwrap()).unwrap()
    };
    let (assisted, alone) = (result("out-assisted"), result("out-alone"));
    assert_eq!((assisted["point_assist"].as_bool(), alone["point_assist"].as_bool()), (Some(true), Some(false)));
    assert!(voxels("out-assisted") > 0 && mask("out-assisted") != mask("out-alone"), "the assist answered nothing");

    // Bad jobs: a stable code, a non-zero exit, nothing written.
    for (name, edit, code) in [
        ("outside", serde_json::json!({"boundaries": {"top": 4, "bottom": 25}}), "PROMPT_BOUNDARY_OUTSIDE"),
        (
            "slice",
            serde_json::json!({"initial_prompt": {"slice": 2, "box": [60, 120, 260, 330]}}),
            "PROMPT_SLICE_OUTSIDE_BOUNDARIES",
        ),
        ("box", serde_json::json!({"initial_prompt": {"slice": 10, "box": [60, 120, 60, 330]}}), "PROMPT_INVALID"),
        ("empty_reference", serde_json::json!({"reference_label": 250}), "REFERENCE_EMPTY"),
        ("no_prompt", serde_json::json!({"initial_prompt": {"slice": 10}}), "JOB_EMPTY_PROMPT"),
    ] {
        let mut bad = job.clone();
        for (k, v) in edit.as_object().unwrap() {
            bad["targets"][0][k] = v.clone();
        }
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, bad.to_string()).unwrap();
        let out = dir.join(format!("out-{name}"));
        let r = run(&path, &out);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && stderr.contains(code), "{name}: expected {code}, got: {stderr}");
        assert!(!out.exists(), "{name}: nothing written");
    }
    let leftovers = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .count();
    assert_eq!(leftovers, 0, "no staging folders left behind");
}

/// Every prompt error of a job is found before the first slice is encoded (the encoder is what
/// takes the time): counted through the progress callback, which reports each encoded batch.
#[test]
fn prompt_errors_of_a_job_arrive_before_any_slice_is_encoded() {
    radsam::allocator::keep_freed_memory();
    let sam = Sam::load(ModelConfig::by_name("lite_medsam").unwrap(), &weights("lite_medsam"), Device::Cpu).unwrap().0;
    let dir = temp_dir("prompt-checks");
    let job = serde_json::json!({
        "schema_version": 1, "job_id": "prompt-checks",
        "volume_uri": data("example_ct.nii.gz").display().to_string(),
        "targets": [
            {"label": "liver", "initial_prompt": {"slice": 102, "box": [20, 30, 80, 75]}, "boundaries": {"top": 104, "bottom": 100},
             "correction_clicks": [{"slice": 101, "x": 40, "y": 50, "positive": false}]},
            {"label": "spleen", "initial_prompt": {"slice": 101, "points": [{"x": 90, "y": 60, "positive": true}]}, "boundaries": {"top": 100, "bottom": 102}}
        ]
    });
    let run = |job: &serde_json::Value, name: &str| {
        let job: radsam::job::Job = serde_json::from_value(job.clone()).unwrap();
        job.validate().unwrap();
        let out = dir.join(name);
        std::fs::create_dir_all(&out).unwrap();
        let mut encoded = 0;
        let result = radsam::job::process(&job, &sam, "test", &out, &Default::default(), &mut |stage, _, _| {
            encoded += (stage == "encoding slices") as usize
        });
        (result.map(|r| r.encoded_slices).map_err(|e| e.code()), encoded)
    };
    // The counter sees encoding when there is some: a valid job encodes the slices its
    // propagations reach (lazily, each once), at most its 5, and reports each.
    let (encoded, reports) = run(&job, "valid");
    assert!(matches!(encoded, Ok(1..=5)) && encoded == Ok(reports), "{encoded:?} slices, {reports} reports");
    let (w, h) = (122, 101); // example_ct.nii.gz: 122 columns, 101 rows, 112 slices
    for (name, target, edit, code) in [
        (
            "slice outside the boundaries",
            0,
            serde_json::json!({"initial_prompt": {"slice": 99, "box": [20, 30, 80, 75]}}),
            "PROMPT_SLICE_OUTSIDE_BOUNDARIES",
        ),
        (
            "box outside the slice",
            0,
            serde_json::json!({"initial_prompt": {"slice": 102, "box": [20, 30, w + 5, 75]}}),
            "PROMPT_INVALID",
        ),
        (
            "inverted box",
            0,
            serde_json::json!({"initial_prompt": {"slice": 102, "box": [80, 30, 20, 75]}}),
            "PROMPT_INVALID",
        ),
        (
            "point outside the slice",
            1,
            serde_json::json!({"initial_prompt": {"slice": 101, "points": [{"x": 90, "y": h, "positive": true}]}}),
            "PROMPT_INVALID",
        ),
        (
            "click outside the slice",
            0,
            serde_json::json!({"correction_clicks": [{"slice": 101, "x": -1, "y": 50, "positive": true}]}),
            "PROMPT_INVALID",
        ),
        (
            "click outside the boundaries",
            1,
            serde_json::json!({"correction_clicks": [{"slice": 104, "x": 40, "y": 50, "positive": true}]}),
            "PROMPT_SLICE_OUTSIDE_BOUNDARIES",
        ),
        (
            "boundary outside the volume",
            1,
            serde_json::json!({"boundaries": {"top": 100, "bottom": 112}}),
            "PROMPT_BOUNDARY_OUTSIDE",
        ),
    ] {
        let mut bad = job.clone();
        for (k, v) in edit.as_object().unwrap() {
            bad["targets"][target][k] = v.clone();
        }
        assert_eq!(run(&bad, &name.replace(' ', "_")), (Err(code), 0), "{name}: its code, and no slice encoded");
    }
}

/// An RLE DICOM series whose frames decode to 1 byte per segment instead of Rows x Columns:
/// dicom-rs 0.8 indexes past the decoded segment and panics (the reader catches it).
const CORRUPT_RLE_SERIES: &str = r#"
import sys, struct, pathlib, pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
for f in sorted(src.iterdir())[:3]:
    ds = pydicom.dcmread(f)
    header = struct.pack("<16I", 2, 64, 66, *([0] * 13))
    ds.PixelData = encapsulate([header + bytes([0, 7, 0, 7])])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.save_as(dst / f.name, enforce_file_format=True)
"#;

/// `radsam segment` on what it cannot do: a stable code, and a caught panic is one line, not a
/// stack dump, even with RUST_BACKTRACE=1.
#[test]
fn cli_segment_gives_codes_not_backtraces() {
    let dir = temp_dir("segment-codes");
    let segment = |volume: &std::path::Path, model: &str| {
        Command::new(env!("CARGO_BIN_EXE_radsam"))
            .args(["segment", "--model", model, "--slice", "0", "--boundaries", "0,0", "--box", "1,1,5,5", "--out"])
            .arg(dir.join("out"))
            .arg("--volume")
            .arg(volume)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap()
    };
    let out = segment(&data("example_ct.nii.gz"), "no_such_model");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("[JOB_UNKNOWN_MODEL]"), "{stderr}");

    let corrupt = dir.join("corrupt_rle");
    let made = Command::new(common::python())
        .arg("-c")
        .arg(CORRUPT_RLE_SERIES)
        .arg(data("example_ct_dicom"))
        .arg(&corrupt)
        .status()
        .unwrap();
    assert!(made.success(), "pydicom (make setup) writes the corrupt series");
    let out = segment(&corrupt, "radsam");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("[VOLUME_UNREADABLE]"), "{stderr}");
    assert!(
        stderr.contains("panic") && stderr.contains("index out of bounds"),
        "the decoder did panic (else this checks nothing): {stderr}"
    );
    assert!(!stderr.contains("stack backtrace") && stderr.lines().count() <= 3, "{stderr}");
    assert!(!dir.join("out").exists());
}

/// The liver (label 5) of the sample CT: its slices `lo..=hi` and the slice of its box prompt, the
/// case of the guard, continuity and click-check tests.
const LIVER: (usize, usize, usize) = (69, 111, 106);

/// The shipped RadSAM, the sample CT, its liver mask and the box around it on LIVER's prompt slice.
fn liver_case() -> (Sam, radsam::volume::Volume, Vec<u8>, SlicePrompt) {
    radsam::allocator::keep_freed_memory();
    let sam = Sam::load(ModelConfig::by_name("radsam").unwrap(), &weights("radsam"), Device::Cpu).unwrap().0;
    let ct = read_nifti(&data("example_ct.nii.gz")).unwrap();
    let labels = read_nifti(&data("example_seg_fast_force_split.nii.gz")).unwrap();
    let liver: Vec<u8> = labels.data.iter().map(|&v| (v == 5.0) as u8).collect();
    let w = ct.grid.plane_shape().1;
    let prompt = SlicePrompt { bbox: bounding_box(&ct.grid.extract(&liver, LIVER.2), w), ..Default::default() };
    (sam, ct, liver, prompt)
}

#[test]
fn guards_judge_carried_slices_report_each_firing_and_stop_a_leak_with_no_way_out() {
    let (sam, ct, liver, prompt) = liver_case();
    let (lo, hi, start) = LIVER;
    let session = VolumeSession::new(&sam, &ct, (lo, hi), 16, &mut |_, _| {}).unwrap();

    // Off (the default): no event.
    let mut plain = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None);
    plain.start(start, &prompt).unwrap();
    assert!(plain.guard_events().is_empty());

    // A limit no mask can meet (no growth, no slack): the first carried slice each way is judged a
    // leak with no acceptable mask, so propagation stops there, reported as a guard and as a stop.
    let strict = GuardSettings { max_growth: 0.0, slack_mm2: 0.0, ..GuardSettings::default() };
    let mut guarded = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_guards(Some(strict));
    guarded.start(start, &prompt).unwrap();
    let events = guarded.guard_events();
    assert_eq!(
        events.iter().map(|e| (e.slice, e.direction)).collect::<Vec<_>>(),
        vec![(start - 1, -1), (start + 1, 1)],
        "{events:?}"
    );
    assert!(events.iter().all(|e| e.reason == GuardReason::AreaJump
        && e.kept_mask.is_none()
        && e.rejected_pixels > 0
        && e.previous_pixels > 0));
    let mut stopped: Vec<usize> = guarded.stops().iter().map(|s| s.empty_slice).collect();
    stopped.sort();
    assert_eq!(stopped, vec![start - 1, start + 1]);
    let covered: Vec<usize> =
        guarded.states().iter().filter(|(_, s)| s.mask.iter().any(|&v| v > 0)).map(|(&k, _)| k).collect();
    assert_eq!(covered, vec![start], "only the prompted slice keeps a mask");
    // A click below refills from the click; the events of recomputed slices are replaced, the
    // clicked slice (the user's input) is never judged.
    let click = Click { slice: 95, x: 30.0, y: 50.0, positive: true };
    guarded.add_click(click).unwrap();
    assert!(guarded.guard_events().iter().all(|e| e.slice != 95));

    // The default thresholds on this liver: the result stays a liver (a guard may switch a mask,
    // never empties the organ), and every event names a carried slice.
    let mut default =
        Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_guards(Some(GuardSettings::default()));
    default.start(start, &prompt).unwrap();
    let (d_plain, d_guarded) = (dice(&plain.mask(), &liver), dice(&default.mask(), &liver));
    println!(
        "liver, mask carry: Dice {d_plain:.3} without guards, {d_guarded:.3} with ({} events)",
        default.guard_events().len()
    );
    assert!(d_guarded > 0.5, "{d_guarded}");
    assert!(default.guard_events().iter().all(|e| e.slice != start && (lo..=hi).contains(&e.slice)));
}

#[test]
fn the_carry_ensemble_keeps_the_prompted_slice_and_changes_carried_ones_with_the_reference_box() {
    let (sam, ct, liver, prompt) = liver_case();
    let (lo, hi, start) = LIVER;
    let session = VolumeSession::new(&sam, &ct, (lo, hi), 16, &mut |_, _| {}).unwrap();
    let mut alone = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None);
    alone.start(start, &prompt).unwrap();
    let mut ensemble =
        Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_carry_cue(CarryCue::Ensemble);
    ensemble.start(start, &prompt).unwrap();
    // The user's slice is decoded once, from the user's box, as without the ensemble.
    assert_eq!(ensemble.states()[&start].mask, alone.states()[&start].mask);
    // Every other slice is decoded twice: from the carried mask and from the reference box.
    let carried = alone.decoded_slices - 1;
    assert_eq!(ensemble.decoded_slices, 1 + 2 * carried, "{} carried slices", carried);
    // The second answer weighs: some carried slice differs, and the liver stays a liver.
    let differ =
        ensemble.states().iter().filter(|(k, s)| alone.states().get(k).is_some_and(|a| a.mask != s.mask)).count();
    assert!(differ > 0, "the reference box changed no carried slice");
    let (d_alone, d_ensemble) = (dice(&alone.mask(), &liver), dice(&ensemble.mask(), &liver));
    println!("liver, mask carry: Dice {d_alone:.3} alone, {d_ensemble:.3} averaged with the reference box ({differ} slices differ)");
    assert!(d_ensemble > 0.8, "{d_ensemble}");
}

#[test]
fn continuity_keeps_the_users_slices_and_continues_carried_ones() {
    let (sam, ct, liver, prompt) = liver_case();
    let (lo, hi, start) = LIVER;
    let w = ct.grid.plane_shape().1;
    let session = VolumeSession::new(&sam, &ct, (lo, hi), 16, &mut |_, _| {}).unwrap();

    for carry in [Carry::Mask, Carry::Box] {
        let mut primary = Segmenter::new(&session, carry, MaskChoice::Primary, None);
        primary.start(start, &prompt).unwrap();
        let mut continued = Segmenter::new(&session, carry, MaskChoice::Continuity, None);
        continued.start(start, &prompt).unwrap();
        // The prompted slice is the user's: the decoder's primary mask, as without continuity.
        let (p, c) = (&primary.states()[&start], &continued.states()[&start]);
        assert_eq!((c.chosen, &c.mask), (0, &p.mask));
        // Carried slices take another mask where one continues the previous slice better: on this
        // liver some do (else this checks nothing), never the prompted one.
        let switched: Vec<usize> = continued.states().iter().filter(|(_, s)| s.chosen != 0).map(|(&k, _)| k).collect();
        assert!(!switched.is_empty(), "{carry:?}: no carried slice switched");
        assert!(!switched.contains(&start));
        let (d_primary, d_continued) = (dice(&primary.mask(), &liver), dice(&continued.mask(), &liver));
        println!(
            "liver, {carry:?} carry: Dice {d_primary:.3} primary, {d_continued:.3} continuity ({} slices switched)",
            switched.len()
        );
        assert!(d_continued > 0.5, "{d_continued}");
    }
    // Slice-level prompts are the user's own on every slice: continuity changes nothing there.
    let per_slice: std::collections::BTreeMap<usize, SlicePrompt> = (100..=104)
        .filter_map(|s| {
            bounding_box(&ct.grid.extract(&liver, s), w)
                .map(|b| (s, SlicePrompt { bbox: Some(b), ..Default::default() }))
        })
        .collect();
    let mut a = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None);
    let mut b = Segmenter::new(&session, Carry::Mask, MaskChoice::Continuity, None);
    a.slice_level(&per_slice).unwrap();
    b.slice_level(&per_slice).unwrap();
    assert_eq!(a.mask(), b.mask());
}

#[test]
fn the_click_check_honours_a_click_the_decoder_ignored_and_changes_nothing_else() {
    let (sam, ct, liver, prompt) = liver_case();
    let (lo, hi, start) = LIVER;
    let w = ct.grid.plane_shape().1;
    let session = VolumeSession::new(&sam, &ct, (lo, hi), 16, &mut |_, _| {}).unwrap();
    let mut off = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None);
    off.start(start, &prompt).unwrap();
    let mut on = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_click_check(true);
    on.start(start, &prompt).unwrap();
    assert_eq!(off.mask(), on.mask(), "no click yet: the check has nothing to do");

    // Clicks drawn uniformly from the first result's error (the paper's), each alone on that result.
    let mut rng = radsam::rng::SplitMix64(7);
    let at = |seg: &Segmenter, c: &Click| ct.grid.extract(&seg.mask(), c.slice)[c.y as usize * w + c.x as usize];
    let mut honoured_by_the_check = 0;
    for _ in 0..12 {
        let click = radsam::prompt::simulate_click(&off.mask(), &liver, &ct.grid, (lo, hi), &mut rng).unwrap();
        let (mut a, mut b) = (off.clone(), on.clone());
        a.add_click(click).unwrap();
        b.add_click(click).unwrap();
        let (sa, sb) = (&a.states()[&click.slice], &b.states()[&click.slice]);
        let agrees = |seg: &Segmenter| (at(seg, &click) != 0) == click.positive;
        if agrees(&a) {
            // The decoder's mask already agrees: the check keeps it, and everything else.
            assert_eq!((sb.chosen, a.mask()), (sa.chosen, b.mask()), "{click:?}");
        } else if sb.chosen != sa.chosen {
            // It took another mask: one that agrees with the click.
            assert!(agrees(&b), "{click:?}");
            honoured_by_the_check += 1;
        } else {
            // No mask agrees: the decoder's stays.
            assert_eq!(a.mask(), b.mask(), "{click:?}");
        }
    }
    println!("of 12 clicks, the click check honoured {honoured_by_the_check} that the decoder's mask ignored");
    assert!(honoured_by_the_check > 0, "no click where the check acted: this checks nothing");
}

#[test]
fn correction_carry_recarries_the_slices_after_a_click_by_the_correction_head_and_no_others() {
    let (sam, ct, liver, prompt) = liver_case();
    assert!(sam.has_correction_head(), "the shipped RadSAM holds a correction head (v7)");
    let (lo, hi, start) = LIVER;
    let session = VolumeSession::new(&sam, &ct, (lo, hi), 16, &mut |_, _| {}).unwrap();
    let mut off = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_correction_carry(false);
    off.start(start, &prompt).unwrap();
    let mut on = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_correction_carry(true);
    on.start(start, &prompt).unwrap();
    assert_eq!(off.mask(), on.mask(), "no click yet: both carry by the propagation head");
    let before = on.clone();

    // A click below the prompted slice (the paper's uniform draw from the first result's error).
    let mut rng = radsam::rng::SplitMix64(7);
    let click = std::iter::repeat_with(|| {
        radsam::prompt::simulate_click(&off.mask(), &liver, &ct.grid, (lo, hi), &mut rng).unwrap()
    })
    .take(50)
    .find(|c| c.slice + 5 < start && c.slice > lo + 5)
    .expect("a click at least 5 slices from the prompt and the boundary");
    off.add_click(click).unwrap();
    on.add_click(click).unwrap();
    // A slice beyond a stop has no state: None.
    let slice = |seg: &Segmenter, k: usize| seg.states().get(&k).map(|s| s.mask.clone());
    // The clicked slice is the correction head's answer either way.
    assert_eq!(slice(&on, click.slice), slice(&off, click.slice));
    // The slices carried on from it, away from the prompt, are re-propagated by the other head: a
    // different decoder gives different masks on some of them.
    let recarried: Vec<usize> = (lo..click.slice).filter(|&k| slice(&on, k) != slice(&off, k)).collect();
    assert!(!recarried.is_empty(), "no re-propagated slice differs: the option did nothing");
    // Beyond the prompted slice nothing was re-propagated: the result before the click, both ways.
    for k in start..=hi {
        assert_eq!(slice(&on, k), slice(&before, k), "slice {k}");
        assert_eq!(slice(&off, k), slice(&before, k), "slice {k}");
    }
    let (d_off, d_on) = (dice(&off.mask(), &liver), dice(&on.mask(), &liver));
    println!(
        "liver, one click on slice {}: Dice {d_off:.3} carried by the propagation head, {d_on:.3} by the correction head ({} slices differ)",
        click.slice,
        recarried.len()
    );
}
