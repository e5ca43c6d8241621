# The project's entry points. `make run` and `make test` do all set-up themselves.
#   make run    - the main job, end to end on the sample CT
#   make test   - the style check (cargo fmt, rustfmt.toml) and every test (parity fixtures are regenerated first)
#   make bench  - the model benchmark of bench/ (writes bench/results/model_bench.*)
#   make bench-propagation - Dice of propagation and editing, and its timing (bench/results/propagation_bench.*)
#   make train-radsam - trains v1, models/radsam-v1.safetensors, the shipped file's decoder (the recorded, seeded command; ~1 h on 2 CPU cores)
#   make train-radsam-v2 - continues v1 on both training CTs, class-balanced, centred edit clicks (runs/train-radsam-v2/; ~1 h on 2 CPU cores)
#   make train-radsam-v3 - continues v2 with propagation (carry) training, a lower rate and weight averaging (runs/train-radsam-v3/; ~1 h)
#   make train-radsam-v4 - v3's recipe from v3 on a three-window encoder input (soft tissue, RadSAM, lung) (runs/train-radsam-v4/; ~1 h)
#   make train-radsam-v5 - v4 continued from its committed weights at half its rate (runs/train-radsam-v5/; ~50 min)
#   make train-radsam-v6 - v1 with v3's recipe, half its mask prompts and carries with the widened box as a cue (runs/train-radsam-v6/; ~1 h)
#   make compose-radsam-v7 - v1 with v3's decoder as its correction head for clicked slices, no training (models/radsam-v7.safetensors; seconds)
#   make bench-correction-head - v7 beside v1 in the paper's benchmark, clicks included (bench/results/correction_head/; ~35 min)
#   make bench-correction-carry - v7 with the re-propagated slices carried by either head, on 3 unseen phantoms (bench/results/correction_carry/; ~35 min)
#   make compose-radsam-v10 - v7 with radsam-mobile-v1 as its point assist for slices prompted by points alone, no training (models/radsam-v10.safetensors, shipped as models/radsam.safetensors; seconds)
#   make train-radsam-v8 / compose-radsam-v8 - a correction head trained for negative clicks, v1 with it (not shipped; ~65 min)
#   make bench-negative-clicks - v7 against v8 on 3 unseen phantoms (bench/results/negative_clicks/; needs v8's weights)
#   make bench-negative-erase - v7 with the negative erase off and on: 3 unseen phantoms, then the benchmark's 21 objects (bench/results/negative_erase/; ~80 min)
#   make bench-prompt-box   - v7 (negative erase on): a click on the prompted slice without or with the user's box, 3 unseen phantoms and the benchmark's 21 objects (bench/results/prompt_box/)
#   make bench-point-start  - a point alone answered by the primary mask, the best predicted IoU or the point's box: 3 unseen phantoms (STAGE=validation: the benchmark's 21 objects, for a setting that won there; bench/results/point_start/)
#   make bench-point-assist - a point alone answered by another model (radsam-mobile-v1), v7 carrying its mask: 3 unseen phantoms, then the benchmark's 21 objects (STAGE=phantoms: the first alone) (bench/results/point_assist/)
#   make bench-tight-prompts - v7 from the simulated and from exact prompts, the benchmark's 21 objects, no clicks: what the prompt costs (bench/results/tight_prompts/; ~10 min)
#   make train-radsam-v9 - v1 with the image encoder trained too, at half the decoder's rate (GPU: DEVICE=cuda; on this CPU batch 8 runs out of 24 GiB; runs/train-radsam-v9/)
#   make train-radsam-mobile - the RadSAM recipe on MobileSAM (1024-pixel encoder, frozen), v1's batches, both training CTs (runs/train-radsam-mobile/; ~1 h)
#   make bench-mobile-sam [CANDIDATE=...] - MobileSAM as fetched (and a RadSAM fine-tune of it) beside the shipped RadSAM, the benchmark's 21 objects, no clicks (bench/results/mobile_sam/)
#   make run-pacs - the PACS round trip: the sample series stored into the test PACS (Orthanc), segmented by DICOMweb URI, its SEG stored back
#   make gpu-bundle - gpu/bundle: binary, weights, sample CT and the GPU check script for a GPU host (run.sh writes gpu_check.json)
#   make bench-mask-prompts - the validation spleen from a box, from a mask file on one slice, and refined (bench/results/mask_prompts.md)
#   make bench-dicomweb - the PACS path (DICOMweb fetch, STOW-RS store) against the S3 path, same series (bench/results/dicomweb_bench.*)
#   make bench-service - the queue service: jobs/min and seconds by stage, 1 and 2 workers vs the CLI (bench/results/service_bench.*)
#   make benchmark - the paper's benchmark (`radsam bench`): LiteMedSAM vs RadSAM on the validation CT and phantoms (bench/results/benchmark/)
#   make bench-radsam - the validation table: LiteMedSAM as shipped vs the project's RadSAM (bench/results/radsam_validation.*)
#   make bench-clicks - single-click diagnosis on the validation CT: what one click does to its slice (bench/results/click_diagnosis/)
#   make bench-reference - the reference baseline (LiteMedSAM's own 3D inference) and drift curves on the validation CT (bench/results/reference_baseline/)
#   make bench-guards - propagation guards off vs on, on the training split (bench/results/guard_choice/)
#   make bench-mask-choice - carried slices: primary mask vs the best continuation, on the training split (bench/results/mask_choice/)
#   make bench-toward-base - v1 moved toward its base LiteMedSAM (WiSE-FT weights 0.75, 0.5), on the training split (bench/results/toward_base/; ~45 min on 2 cores)
#   make bench-candidate MODEL=... [CUE=box] - a trained candidate beside v1 on the validation CT, no clicks (bench/results/candidate/)
#   make bench-carry-ensemble - the shipped model as jobs run it, mask carry alone vs averaged with the reference pipeline, with clicks: 3 unseen phantoms, then the benchmark's 21 objects (bench/results/carry_ensemble/; ~55 min)
#   make bench-carry-cue - mask carry alone vs with the previous mask's box or deepest point, on the training split (bench/results/carry_cue/)
#   make bench-refinement - the prompted slice decoded again from its own mask (0 or 1 pass), on the training split (bench/results/refinement/)
#   make bench-click-check - the click check off vs on, on the training split (bench/results/click_check/)
#   make chaos - the chaos harness: 300 jobs through 2 workers under 20 SIGKILLs and restarts of RabbitMQ, PostgreSQL and the S3 store (bench/results/chaos.md)
#   make bench-box-draws - start-slice losses over 8 box draws per object, v3 vs v1 vs the reference baseline (bench/results/box_draws.*)
#   make bench-base-windows - the base LiteMedSAM on RadSAM's, MedSAM's and the three-window input, validation CT (bench/results/base_windows/)
#   make bench-window - which HU window the frozen encoder reads best, on the training split (bench/results/window_choice.*, window_mix.*)
RADSAM_CACHE ?= $(HOME)/.cache/radsam
VENV := $(RADSAM_CACHE)/venv
export RADSAM_CACHE
export LIBTORCH_USE_PYTORCH := 1
export PYTHON := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)
# cargo's build outputs live in the cache, outside the clone, so fresh clones build incrementally.
export CARGO_TARGET_DIR ?= $(RADSAM_CACHE)/target
CARGO := cargo

services: setup
	bash scripts/services.sh

.PHONY: setup services build run run-pacs test bench bench-dicomweb bench-mask-prompts gpu-bundle bench-propagation parity-fixtures train-radsam train-radsam-v2 train-radsam-v3 train-radsam-v4 train-radsam-v5 train-radsam-v6 compose-radsam-v7 train-radsam-v8 compose-radsam-v8 compose-radsam-v10 bench-negative-clicks bench-negative-erase bench-point-start bench-point-assist bench-assist-variants bench-prompt-box bench-tight-prompts train-radsam-v9 train-radsam-mobile bench-mobile-sam bench-correction-head bench-correction-carry bench-radsam bench-service benchmark bench-clicks bench-window bench-reference bench-guards bench-mask-choice bench-toward-base bench-carry-cue bench-carry-ensemble bench-candidate bench-refinement bench-click-check bench-box-draws bench-base-windows chaos
setup:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace

run: build
	bash scripts/run_sample.sh

run-pacs: build
	bash scripts/run_pacs.sh

parity-fixtures: setup
	$(PYTHON) scripts/parity_reference.py
	$(PYTHON) scripts/volume_reference.py

test: build parity-fixtures services
	$(CARGO) fmt --all --check
	$(CARGO) test --release --workspace -- --test-threads=1

bench: build
	bash bench/run_model_bench.sh

bench-propagation: build
	bash bench/run_propagation_bench.sh

train-radsam: build
	bash bench/train_radsam.sh

train-radsam-v2: build
	bash bench/train_radsam_v2.sh

train-radsam-v3: build
	bash bench/train_radsam_v3.sh

train-radsam-v4: build
	bash bench/train_radsam_v4.sh

train-radsam-v5: build
	bash bench/train_radsam_v5.sh

train-radsam-v6: build
	bash bench/train_radsam_v6.sh

compose-radsam-v7: build
	bash bench/compose_radsam_v7.sh

train-radsam-v8: build
	bash bench/train_radsam_v8.sh

compose-radsam-v8: build
	bash bench/compose_radsam_v8.sh

compose-radsam-v10: build
	bash bench/compose_radsam_v10.sh

bench-negative-clicks: build
	bash bench/run_negative_clicks.sh

bench-negative-erase: build
	bash bench/run_negative_erase.sh

bench-point-start: build
	bash bench/run_point_start.sh

bench-point-assist: build
	bash bench/run_point_assist.sh

bench-assist-variants: build
	bash bench/run_assist_variants.sh

bench-prompt-box: build
	bash bench/run_prompt_box.sh

bench-tight-prompts: build
	bash bench/run_tight_prompts.sh

train-radsam-v9: build
	bash bench/train_radsam_v9.sh

train-radsam-mobile: build
	bash bench/train_radsam_mobile.sh

bench-mobile-sam: build
	bash bench/run_mobile_sam.sh

bench-correction-head: build
	bash bench/run_correction_head.sh

bench-correction-carry: build
	bash bench/run_correction_carry.sh

bench-radsam: build
	bash bench/run_radsam_validation.sh

bench-service: build
	bash bench/run_service_bench.sh

bench-dicomweb: build
	bash bench/run_dicomweb_bench.sh

bench-mask-prompts: build
	bash bench/run_mask_prompts.sh

gpu-bundle: build
	bash scripts/gpu_bundle.sh

benchmark: build
	bash bench/run_benchmark.sh

bench-box-draws: build
	bash bench/run_box_draws.sh

bench-clicks: build
	bash bench/run_click_diagnosis.sh

bench-base-windows: build
	bash bench/run_base_windows.sh

bench-window: setup
	$(PYTHON) bench/window_choice.py bench/results/window_choice.md 2 radsam,soft,wide,lung,bone
	$(PYTHON) bench/window_choice.py bench/results/window_mix.md 2 radsam,soft,rgb-soft-radsam-bone,rgb-soft-radsam-lung,blend-soft-radsam

bench-reference: build
	bash bench/run_reference_baseline.sh

bench-guards: build
	bash bench/run_guard_choice.sh

bench-mask-choice: build
	bash bench/run_mask_choice.sh

bench-toward-base: build
	bash bench/run_toward_base.sh

bench-candidate: build
	bash bench/run_candidate.sh

bench-carry-cue: build
	bash bench/run_carry_cue.sh

bench-carry-ensemble: build
	bash bench/run_carry_ensemble.sh

bench-refinement: build
	bash bench/run_refinement.sh

bench-click-check: build
	bash bench/run_click_check.sh

chaos: build services
	$(CARGO) test --release -p radsam-worker --test chaos -- --ignored --nocapture --test-threads=1 chaos_full
