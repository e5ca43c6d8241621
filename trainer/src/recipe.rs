//! The RadSAM training loop (paper section 3.3): each step draws a batch of (slice, object)
//! samples, prompts them (point, jittered box or noisy mask), then runs a random number of edit
//! steps, each feeding the previous binary mask and the clicks so far; the loss of every step is
//! averaged. AdamW with warm-up and cosine decay; mixed precision on a GPU; a checkpoint every
//! `checkpoint_every` steps and at each epoch's end, from which a killed run resumes exactly (the
//! batches of step k depend only on the seed and k); validation Dice after each epoch.
//!
//! A run directory holds: `config.json`, `log.jsonl` (one line per step, one per validation),
//! `checkpoint.safetensors` (weights, AdamW moments, step), and at the end `weights.safetensors`
//! (the trained tensors in half precision on top of the base checkpoint, see
//! `radsam::model::finetuned`).

use crate::examples::ExampleSet;
use crate::loss::radsam_loss;
use crate::optim::{learning_rate, AdamW, LossScale, WeightAverage};
use crate::prompts::{Batch, ClickDraw, PromptMix};
use crate::validation::{ValidationResult, ValidationSet};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use radsam::model::{finetuned, PromptBatch, Sam};
use radsam::rng::SplitMix64;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Everything that decides the training, saved as config.json. A resumed run must match it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct TrainSettings {
    pub base_model: String,
    pub epochs: usize,
    pub steps_per_epoch: usize,
    pub batch_size: usize,
    /// Edit steps after the first prediction: min_clicks..=max_clicks, uniformly, per batch.
    pub max_clicks: usize,
    /// The fewest edit steps of a batch that is not a carry batch (0: the paper's 0..=max_clicks).
    #[serde(default)]
    pub min_clicks: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub warmup_steps: usize,
    /// The schedule's final rate as a fraction of the peak.
    pub final_lr_fraction: f64,
    pub train_encoder: bool,
    pub mixed_precision: bool,
    pub seed: u64,
    pub checkpoint_every: usize,
    pub prompt_mix: PromptMix,
    /// Propagation training: a carry batch follows its first prediction through 1..=carry_steps
    /// neighbouring slices, each prompted with the previous slice's binary prediction (0: off).
    #[serde(default)]
    pub carry_steps: usize,
    /// The fraction of batches that are carry batches.
    #[serde(default)]
    pub carry_fraction: f64,
    /// Export (and validate) an exponential moving average of the weights with this decay (0: off,
    /// the last step's weights).
    #[serde(default)]
    pub ema_decay: f64,
    /// Sampling by class: a sample's weight is 1 / (samples of its class)^class_balance, so that
    /// a few large organs spanning many slices do not dominate (0: every sample alike; 1: every
    /// class alike).
    #[serde(default)]
    pub class_balance: f64,
    /// The fraction of edit clicks placed at the centre of the largest error component (the CVPR
    /// 2025 click) instead of uniformly over the error (0: all uniform, the paper).
    #[serde(default)]
    pub centre_clicks: f64,
    /// The fraction of edit clicks drawn from the false pixels where a prediction has any
    /// (`prompts::ClickDraw`; 0: over the whole error, the paper).
    #[serde(default)]
    pub negative_clicks: f64,
    /// The fraction of carry batches whose carried prompts also hold the widened box around the
    /// carried mask (what `CarryCue::Box` hands on at inference; 0: the mask alone, the paper).
    #[serde(default)]
    pub carry_box: f64,
    /// The encoder's share of the learning rate when it trains (`train_encoder`): below 1 so that
    /// a small fine-tune adapts what the base encoder knows rather than overwrites it. Stored as 1
    /// (the default) for a frozen encoder, so such runs resume under any setting.
    #[serde(default = "one")]
    pub encoder_lr_scale: f64,
    /// The mask decoder's share of the learning rate: below 1 so that the decoder keeps what the
    /// base model does with boxes and points while the prompt encoder learns to read mask
    /// prompts (a guard against forgetting; 1: the whole rate, as before).
    #[serde(default = "one")]
    pub decoder_lr_scale: f64,
}

fn one() -> f64 {
    1.0
}

/// Reads a learning-rate share (`--encoder-lr-scale`, `--decoder-lr-scale`): a finite number of at
/// least 0 (0 freezes the group). A negative share would climb the loss and NaN would poison every
/// weight it touches, both silently, so they are refused before the run starts.
pub fn parse_lr_share(text: &str) -> Result<f64, String> {
    let share: f64 = text.trim().parse().map_err(|_| format!("`{text}` is not a number"))?;
    if !share.is_finite() || share < 0.0 {
        return Err(format!("`{text}`: a learning-rate share must be a finite number >= 0 (0 freezes the group)"));
    }
    Ok(share)
}

impl PartialEq for PromptMix {
    fn eq(&self, o: &Self) -> bool {
        self.point == o.point && self.r#box == o.r#box && self.mask == o.mask && self.mask_box == o.mask_box
    }
}

#[derive(serde::Serialize)]
struct StepLine {
    step: usize,
    epoch: usize,
    loss: f64,
    primary: f64,
    best_secondary: f64,
    iou_mse: f64,
    train_dice: f64,
    lr: f64,
    edit_steps: usize,
    carry_steps: usize,
    skipped: bool,
    seconds: f64,
}

#[derive(serde::Serialize)]
struct ValidationLine<'a> {
    epoch: usize,
    step: usize,
    validation: &'a ValidationResult,
}

const CHECKPOINT: &str = "checkpoint.safetensors";

pub struct Trainer<'a> {
    pub sam: &'a Sam,
    pub settings: TrainSettings,
    pub run_dir: PathBuf,
    pub base_weights: PathBuf,
    opt: AdamW,
    ema: Option<WeightAverage>,
    scale: LossScale,
    start_step: usize,
}

impl<'a> Trainer<'a> {
    /// `params`: the variables that learn (`Sam::set_trainable`). Resumes from the run directory's
    /// checkpoint when there is one (and refuses a run directory made with other settings).
    pub fn new(
        sam: &'a Sam,
        params: Vec<(String, Tensor)>,
        settings: TrainSettings,
        run_dir: &Path,
        base_weights: &Path,
    ) -> Result<Self> {
        std::fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        let config_path = run_dir.join("config.json");
        if config_path.exists() {
            let old: TrainSettings = serde_json::from_str(&std::fs::read_to_string(&config_path)?)
                .with_context(|| format!("{}: unreadable", config_path.display()))?;
            if old != settings {
                bail!("{}: this run directory was started with other settings; use a new --run-dir (or the same settings to resume)", config_path.display());
            }
        } else {
            write_atomic(&config_path, serde_json::to_string_pretty(&settings)?.as_bytes())?;
        }
        let mut opt = AdamW::new(params, settings.weight_decay);
        opt.scale_lr("image_encoder.", settings.encoder_lr_scale);
        opt.scale_lr("mask_decoder.", settings.decoder_lr_scale);
        let mut ema = (settings.ema_decay > 0.0).then(|| WeightAverage::new(opt.params(), settings.ema_decay));
        let scale = LossScale::new(settings.mixed_precision);
        let mut start_step = 0;
        let ckpt = run_dir.join(CHECKPOINT);
        if ckpt.exists() {
            let state: HashMap<String, Tensor> = Tensor::read_safetensors(&ckpt)
                .with_context(|| format!("{}: unreadable checkpoint", ckpt.display()))?
                .into_iter()
                .collect();
            opt.load_state(&state).map_err(|e| anyhow::anyhow!("{}: {e}", ckpt.display()))?;
            if let Some(ema) = ema.as_mut() {
                ema.load_state(&state).map_err(|e| anyhow::anyhow!("{}: {e}", ckpt.display()))?;
            }
            start_step = opt.step as usize;
            eprintln!("resuming from {} at step {start_step}", ckpt.display());
        }
        // Drop log lines of steps after the checkpoint: they are done again.
        let log = run_dir.join("log.jsonl");
        if log.exists() {
            let kept: Vec<String> = std::fs::read_to_string(&log)?
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                        .is_some_and(|s| {
                            (s as usize) < start_step || (s as usize == start_step && l.contains("\"validation\""))
                        })
                })
                .map(String::from)
                .collect();
            write_atomic(&log, (kept.join("\n") + if kept.is_empty() { "" } else { "\n" }).as_bytes())?;
        }
        Ok(Self {
            sam,
            settings,
            run_dir: run_dir.to_path_buf(),
            base_weights: base_weights.to_path_buf(),
            opt,
            ema,
            scale,
            start_step,
        })
    }

    pub fn total_steps(&self) -> usize {
        self.settings.epochs * self.settings.steps_per_epoch
    }

    fn save_checkpoint(&self) -> Result<()> {
        let mut state = self.opt.state();
        if let Some(ema) = &self.ema {
            state.extend(ema.state());
        }
        let refs: Vec<(&str, &Tensor)> = state.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let tmp = self.run_dir.join("checkpoint.partial");
        Tensor::write_safetensors(&refs, &tmp)?;
        std::fs::rename(&tmp, self.run_dir.join(CHECKPOINT))?;
        Ok(())
    }

    /// Trains to the end (or from the checkpoint to the end), validating after every epoch.
    pub fn run(&mut self, set: &ExampleSet, validation: &mut Option<ValidationSet<'a>>) -> Result<()> {
        let total = self.total_steps();
        if set.samples.is_empty() {
            bail!("no training samples (no slice has an object of at least the minimum size)");
        }
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(self.run_dir.join("log.jsonl"))?;
        let bar = ProgressBar::new(total as u64).with_position(self.start_step as u64);
        bar.set_style(ProgressStyle::with_template("train [{bar:30}] {pos}/{len} {elapsed} eta {eta} {msg}").unwrap());
        let m = self.sam.mask_size();
        let amp = self.settings.mixed_precision && self.sam.device().is_cuda();
        let mut recent: Vec<f64> = Vec::new();
        let chains =
            if self.settings.carry_steps > 0 { carry_chains(set, self.settings.carry_steps) } else { Vec::new() };
        let sampler = SampleDraw::new(set, self.settings.class_balance);
        if self.start_step == 0 {
            if let Some(v) = validation.as_mut() {
                // Epoch 0: the base model, the curve's starting point.
                let result = bar.suspend(|| v.run(self.sam, false))?;
                let summary: Vec<String> = result.mean.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
                bar.suspend(|| eprintln!("base model validation Dice: {}", summary.join(", ")));
                writeln!(
                    log,
                    "{}",
                    serde_json::to_string(&ValidationLine { epoch: 0, step: 0, validation: &result })?
                )?;
            }
        }
        for step in self.start_step..total {
            let t0 = std::time::Instant::now();
            let epoch = step / self.settings.steps_per_epoch;
            // The batch of step k depends on (seed, k) only: resuming reproduces the same batches.
            let mut rng = SplitMix64(self.settings.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            // A carry batch (drawn first, and only when carry training is on, so that runs without
            // it keep their batches) starts on chains of slices; its later steps follow the chain.
            let carry_len = match self.settings.carry_steps {
                n if n > 0 && !chains.is_empty() && rng.uniform() < self.settings.carry_fraction => 1 + rng.below(n),
                _ => 0,
            };
            let (picks, chain_picks) = if carry_len > 0 {
                let eligible: Vec<&CarryChain> = chains.iter().filter(|c| c.next.len() >= carry_len).collect();
                let drawn: Vec<&CarryChain> =
                    (0..self.settings.batch_size).map(|_| eligible[rng.below(eligible.len())]).collect();
                (drawn.iter().map(|c| (c.start, c.id)).collect::<Vec<_>>(), drawn)
            } else {
                ((0..self.settings.batch_size).map(|_| set.samples[sampler.draw(&mut rng)]).collect(), Vec::new())
            };
            // Drawn only when the box cue is on, so that runs without it keep their batches.
            let carry_box = carry_len > 0 && self.settings.carry_box > 0.0 && rng.uniform() < self.settings.carry_box;
            let kind = self.settings.prompt_mix.draw(&mut rng);
            let (lo, hi) = (self.settings.min_clicks, self.settings.max_clicks);
            let edit_steps = if carry_len > 0 { 0 } else { lo + rng.below(hi - lo + 1) };
            let mut batch = Batch::new(set, &picks, m, self.sam.device());
            let mut prompt = batch.first_prompt(set, &picks, kind, m, &mut rng);
            self.opt.zero_grad();
            let (mut loss_sum, mut parts, mut train_dice) = (0.0, [0.0; 3], 0.0);
            let n_steps = edit_steps + carry_len + 1;
            // Frozen encoder: the batch's cached embeddings are gathered once per set of views.
            // A trained encoder's embeddings carry gradients and are recomputed per step (each
            // backward pass frees the graph).
            let mut frozen_embeddings = (!self.settings.train_encoder).then(|| set.embeddings(self.sam, &batch.views));
            for t in 0..n_steps {
                let embeddings = match &frozen_embeddings {
                    Some(e) => e.shallow_clone(),
                    None => set.embeddings(self.sam, &batch.views),
                };
                let pred = tch::autocast(amp, || self.sam.decode_train(&embeddings, &prompt));
                let l = radsam_loss(&pred.low_res_logits, &pred.iou, &batch.targets);
                (&l.total * (self.scale.scale / n_steps as f64)).backward();
                loss_sum += l.total.double_value(&[]) / n_steps as f64;
                parts[0] += l.primary / n_steps as f64;
                parts[1] += l.best_secondary / n_steps as f64;
                parts[2] += l.iou_mse / n_steps as f64;
                if t == 0 {
                    train_dice = l.primary_dice;
                }
                if t + 1 < n_steps {
                    let previous = pred.low_res_logits.narrow(1, 0, 1).detach().to_kind(tch::Kind::Float);
                    if carry_len > 0 {
                        // As in propagation: the primary mask, binary and inside the slice, prompts
                        // the next slice of the chain.
                        let carried = previous.gt(0.0).to_kind(tch::Kind::Float) * &batch.valid;
                        let next: Vec<(usize, u16)> = chain_picks.iter().map(|c| (c.next[t], c.id)).collect();
                        batch = Batch::new(set, &next, m, self.sam.device());
                        if frozen_embeddings.is_some() {
                            frozen_embeddings = Some(set.embeddings(self.sam, &batch.views));
                        }
                        let boxes = carry_box.then(|| batch.carried_boxes(&carried));
                        prompt = PromptBatch { masks: Some(carried), boxes, ..Default::default() };
                    } else {
                        let draw =
                            ClickDraw { centre: self.settings.centre_clicks, negative: self.settings.negative_clicks };
                        prompt = batch.click_prompt(&previous, draw, &mut rng);
                    }
                }
            }
            let lr = learning_rate(
                step,
                total,
                self.settings.warmup_steps,
                self.settings.learning_rate,
                self.settings.final_lr_fraction,
            );
            let ok = self.scale.unscale_and_check(&mut self.opt, amp);
            if ok {
                self.opt.apply(lr);
                if let Some(ema) = self.ema.as_mut() {
                    ema.update(self.opt.params(), self.opt.step);
                }
            } else {
                // A skipped step still counts, so that the step numbering (and resume) stays simple.
                self.opt.step += 1;
            }
            let line = StepLine {
                step,
                epoch,
                loss: loss_sum,
                primary: parts[0],
                best_secondary: parts[1],
                iou_mse: parts[2],
                train_dice,
                lr,
                edit_steps,
                carry_steps: carry_len,
                skipped: !ok,
                seconds: t0.elapsed().as_secs_f64(),
            };
            writeln!(log, "{}", serde_json::to_string(&line)?)?;
            recent.push(loss_sum);
            if recent.len() > 20 {
                recent.remove(0);
            }
            let message = format!(
                "epoch {} loss {:.3} (mean of 20: {:.3}) lr {:.1e}",
                epoch + 1,
                loss_sum,
                recent.iter().sum::<f64>() / recent.len() as f64,
                lr
            );
            if bar.is_hidden() && (step + 1) % 10 == 0 {
                // No terminal (a service, a log file): a plain progress line instead of the bar.
                eprintln!("step {}/{total}: {message}", step + 1);
            }
            bar.set_message(message);
            bar.inc(1);
            let done = step + 1;
            let epoch_end = done % self.settings.steps_per_epoch == 0;
            if done % self.settings.checkpoint_every.max(1) == 0 || epoch_end || done == total {
                self.save_checkpoint()?;
            }
            if epoch_end {
                if let Some(v) = validation.as_mut() {
                    bar.suspend(|| eprintln!("epoch {}: validating", epoch + 1));
                    // The weights that will be exported: the average, when there is one.
                    let result = match &self.ema {
                        Some(ema) => {
                            ema.with_averaged(self.opt.params(), || v.run(self.sam, self.settings.train_encoder))?
                        }
                        None => v.run(self.sam, self.settings.train_encoder)?,
                    };
                    let summary: Vec<String> = result.mean.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
                    bar.suspend(|| eprintln!("epoch {} validation Dice: {}", epoch + 1, summary.join(", ")));
                    writeln!(
                        log,
                        "{}",
                        serde_json::to_string(&ValidationLine { epoch: epoch + 1, step: done, validation: &result })?
                    )?;
                }
            }
        }
        bar.finish();
        Ok(())
    }

    /// Writes the trained tensors (half precision) on top of the base checkpoint, and the model's
    /// correction head and point assist, when it has them, unchanged (training teaches the
    /// propagation head only).
    pub fn export(&self, path: &Path, extra: BTreeMap<String, String>) -> Result<()> {
        let mut meta = extra;
        meta.insert(finetuned::META_BASE_MODEL.into(), self.settings.base_model.clone());
        meta.insert(finetuned::META_BASE_SHA256.into(), finetuned::sha256_hex(&self.base_weights)?);
        meta.insert("radsam.training_settings".into(), serde_json::to_string(&self.settings)?);
        meta.insert("radsam.steps".into(), self.opt.step.to_string());
        let params = match &self.ema {
            Some(ema) => ema.params(),
            None => self.opt.params(),
        };
        let mut tensors: Vec<(String, Tensor)> = params.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        tensors.extend(self.sam.correction_tensors());
        // The point assist too, as the starting file held it (crate::model docs).
        let (assist_tensors, assist_meta) = self.sam.point_assist_part();
        tensors.extend(assist_tensors);
        meta.extend(assist_meta);
        finetuned::write(path, &tensors, &meta)?;
        Ok(())
    }
}

/// A start for propagation training: an object on an original (not augmented) slice view and the
/// original views of the next slices in one direction that hold it too (at most `max_len`).
/// Augmented views cannot chain: each slice's view has its own random transform.
struct CarryChain {
    start: usize,
    id: u16,
    next: Vec<usize>,
}

/// Draws sample indices: uniformly, or weighted by class (`TrainSettings::class_balance`).
struct SampleDraw {
    /// Cumulative weights; empty when every sample weighs the same.
    cumulative: Vec<f64>,
    len: usize,
}

impl SampleDraw {
    fn new(set: &ExampleSet, power: f64) -> Self {
        if power == 0.0 {
            return Self { cumulative: Vec::new(), len: set.samples.len() };
        }
        let classes: Vec<String> = (0..set.samples.len()).map(|i| set.class_of(i)).collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for c in &classes {
            *counts.entry(c.as_str()).or_default() += 1;
        }
        let mut total = 0.0;
        let cumulative = classes
            .iter()
            .map(|c| {
                total += (counts[c.as_str()] as f64).powf(-power);
                total
            })
            .collect();
        Self { cumulative, len: set.samples.len() }
    }

    fn draw(&self, rng: &mut SplitMix64) -> usize {
        if self.cumulative.is_empty() {
            // The unweighted draw: exactly the batches of runs made before class balancing.
            return rng.below(self.len);
        }
        let u = rng.uniform() * self.cumulative[self.len - 1];
        self.cumulative.partition_point(|&c| c <= u).min(self.len - 1)
    }
}

fn carry_chains(set: &ExampleSet, max_len: usize) -> Vec<CarryChain> {
    let original: HashMap<(usize, usize), usize> =
        set.views.iter().enumerate().filter(|(_, v)| v.view == 0).map(|(i, v)| ((v.case, v.slice), i)).collect();
    let samples: std::collections::HashSet<(usize, u16)> = set.samples.iter().copied().collect();
    let mut chains = Vec::new();
    for &(start, id) in &set.samples {
        let view = &set.views[start];
        if view.view != 0 {
            continue;
        }
        for step in [-1i64, 1] {
            let next: Vec<usize> = (1..=max_len as i64)
                .map_while(|j| {
                    let slice = usize::try_from(view.slice as i64 + step * j).ok()?;
                    original.get(&(view.case, slice)).copied().filter(|&v| samples.contains(&(v, id)))
                })
                .collect();
            if !next.is_empty() {
                chains.push(CarryChain { start, id, next });
            }
        }
    }
    chains
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples::{SliceView, ViewInputs};
    use radsam::model::preprocess::SliceGeometry;

    fn view(case: usize, slice: usize, view: usize) -> SliceView {
        SliceView {
            case,
            slice,
            view,
            geometry: SliceGeometry::new(8, 8, 256),
            labels: vec![0; 64],
            neighbours: [None, None],
        }
    }

    #[test]
    fn learning_rate_shares_must_be_finite_and_not_negative() {
        assert_eq!(parse_lr_share("0.5"), Ok(0.5));
        assert_eq!(parse_lr_share("0"), Ok(0.0));
        assert_eq!(parse_lr_share("2"), Ok(2.0));
        for bad in ["-0.1", "NaN", "inf", "-inf", "half", ""] {
            assert!(parse_lr_share(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_config_written_before_the_rate_shares_resumes_with_the_whole_rate() {
        // A run directory started before --encoder-lr-scale and --decoder-lr-scale existed: its
        // settings read back with both shares at 1, what that run trained with, so it resumes.
        let mut old: serde_json::Value = serde_json::from_str(
            r#"{"base_model":"mobile_sam","epochs":4,"steps_per_epoch":100,"batch_size":8,"max_clicks":2,
            "learning_rate":0.0002,"weight_decay":0.01,"warmup_steps":30,"final_lr_fraction":0.05,
            "train_encoder":false,"mixed_precision":false,"seed":1,"checkpoint_every":25,
            "prompt_mix":{"point":0.25,"box":0.25,"mask":0.5,"mask_box":0.0}}"#,
        )
        .unwrap();
        let settings: TrainSettings = serde_json::from_value(old.clone()).unwrap();
        assert_eq!((settings.encoder_lr_scale, settings.decoder_lr_scale), (1.0, 1.0));
        // A share written down is read back, and a different one makes the settings differ.
        old["decoder_lr_scale"] = serde_json::json!(0.05);
        let lowered: TrainSettings = serde_json::from_value(old).unwrap();
        assert_eq!(lowered.decoder_lr_scale, 0.05);
        assert_ne!(lowered, settings);
    }

    #[test]
    fn class_balance_evens_out_classes_and_zero_keeps_the_uniform_draw() {
        // Class 2 ("liver") on 9 views, class 3 ("adrenal") on 1.
        let views: Vec<SliceView> = (0..9).map(|s| view(0, s, 0)).collect();
        let mut samples: Vec<(usize, u16)> = (0..9).map(|v| (v, 2)).collect();
        samples.push((4, 3));
        let names = BTreeMap::from([(2, "liver".to_string()), (3, "adrenal".to_string())]);
        let set = ExampleSet {
            views,
            samples,
            inputs: ViewInputs::Embeddings(Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu))),
            cases: vec!["a".into()],
            case_classes: vec![names],
        };
        let share_of_small = |power: f64| {
            let draw = SampleDraw::new(&set, power);
            let mut rng = SplitMix64(5);
            (0..20000).filter(|_| set.samples[draw.draw(&mut rng)].1 == 3).count() as f64 / 20000.0
        };
        assert!((share_of_small(0.0) - 0.1).abs() < 0.01);
        assert!((share_of_small(1.0) - 0.5).abs() < 0.02);
        // Power 0.5: weights 9 x 1/3 against 1 x 1, a quarter.
        assert!((share_of_small(0.5) - 0.25).abs() < 0.02);
        // Power 0 is the old draw, index for index.
        let (mut a, mut b) = (SplitMix64(9), SplitMix64(9));
        let draw = SampleDraw::new(&set, 0.0);
        assert!((0..100).all(|_| draw.draw(&mut a) == b.below(10)));
    }

    #[test]
    fn carry_chains_follow_original_views_of_consecutive_slices_holding_the_object() {
        // Case 0: slices 0..=3 (view 0), slice 1 also augmented (view 1); case 1: slice 4.
        let views = vec![view(0, 0, 0), view(0, 1, 0), view(0, 1, 1), view(0, 2, 0), view(0, 3, 0), view(1, 4, 0)];
        // Object 2 on slices 0..=3 of case 0 and on case 1's slice 4; object 3 on slices 0 and 2 only.
        let samples = vec![(0, 2), (1, 2), (2, 2), (3, 2), (4, 2), (5, 2), (0, 3), (3, 3)];
        let set = ExampleSet {
            views,
            samples,
            inputs: ViewInputs::Embeddings(Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu))),
            cases: vec!["a".into(), "b".into()],
            case_classes: vec![],
        };
        let chains = carry_chains(&set, 2);
        let mut got: Vec<(usize, u16, Vec<usize>)> = chains.iter().map(|c| (c.start, c.id, c.next.clone())).collect();
        got.sort();
        // Upwards and downwards, at most 2 slices, never through an augmented view, another case or
        // a slice without the object.
        let want = vec![
            (0, 2, vec![1, 3]),
            (1, 2, vec![0]),
            (1, 2, vec![3, 4]),
            (3, 2, vec![1, 0]),
            (3, 2, vec![4]),
            (4, 2, vec![3, 1]),
        ];
        assert_eq!(got, want);
    }
}
