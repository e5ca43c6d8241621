# Sourced by the scripts that measure on the validation CT (run_benchmark.sh, run_base_windows.sh,
# run_box_draws.sh, run_click_diagnosis.sh, run_reference_baseline.sh, run_candidate.sh): the TotalSegmentator
# example DICOM scan (`validation_pair`, never trained on) and the benchmark's 14 classes (the 7 AMOS
# classes it holds, and 7 others: bowel, vessels, bone, muscle, spinal cord). RADSAM_BIN overrides
# the binary (e.g. the GPU bundle's), THREADS libtorch's threads (default: all cores).
threads=${THREADS:-$(nproc)}
data=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/totalsegmentator
bin=${RADSAM_BIN:-${CARGO_TARGET_DIR:-target}/release/radsam}
mkdir -p runs
python scripts/write_label_names.py runs/total_names.json > /dev/null
validation_pair=(--pair "$data/example_ct_dicom=$data/example_seg_dicom.nii.gz" --label-names runs/total_names.json)
benchmark_classes=spleen,liver,stomach,pancreas,adrenal_gland_right,aorta,inferior_vena_cava
benchmark_classes=$benchmark_classes,colon,portal_vein_and_splenic_vein,vertebrae_T12,spinal_cord,autochthon_left,humerus_left,rib_left_8
# The benchmark's phantom objects (`--phantoms 1`: 6 organs and the liver lesion).
benchmark_phantom_classes="phantom liver,phantom spleen,phantom kidney_left,phantom kidney_right,phantom aorta,phantom vertebra,phantom liver_lesion"
# The benchmark's 21 objects as `radsam bench` arguments: the validation scan's 14 and the phantom's 7.
benchmark_objects=("${validation_pair[@]}" --phantoms 1 --classes "$benchmark_classes,$benchmark_phantom_classes")
# One setting on the unseen phantoms that the editing scripts decide on, without clicks:
# `unseen_phantoms_run MODEL OUT ARGS...` (seed 7: training draws 1001-1002, the benchmark's
# phantoms 1100+; PHANTOMS of them, default 3; one libtorch thread unless THREADS says otherwise).
unseen_phantoms_run() {
  "$bin" bench --phantoms "${PHANTOMS:-3}" --phantom-seed 7 --model "radsam=$1" --device "${DEVICE:-cpu}" \
    --threads "${THREADS:-1}" --max-clicks 0 --cvpr25-clicks 0 --seed 1 --no-oracle --out "$2" "${@:3}"
}
