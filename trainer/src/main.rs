//! `radsam-trainer train`: the RadSAM training recipe on labelled CT folders, explicit pairs and
//! synthetic phantoms. See trainer/README.md.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod serve;
use radsam::dataset::{self, LabeledVolume};
use radsam::error::Coded;
use radsam::model::Sam;
use radsam::volume::phantom::PhantomConfig;
use radsam::volume::ReadLimits;
use radsam_trainer::augment::Augmentation;
use radsam_trainer::examples::{self, ExampleSettings};
use radsam_trainer::prompts::PromptMix;
use radsam_trainer::recipe::{parse_lr_share, TrainSettings, Trainer};
use radsam_trainer::validation::ValidationSet;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "radsam-trainer", about = "RadSAM training (paper section 3.3)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fine-tune a SAM-family model with the RadSAM recipe; resumes when --run-dir has a checkpoint.
    Train(TrainArgs),
    /// The periodic fine-tuning service: trains on accepted annotations, registers and (if not
    /// worse) promotes the result. See the README, "The trainer service".
    Serve(serve::ServeArgs),
    /// Writes one weights file from fine-tuned ones: --weights answers the first prompt and carries
    /// masks; --correction answers clicked slices (its decoder as the correction head);
    /// --point-assist answers slices prompted by points alone (the whole model, its own encoder).
    Compose(ComposeArgs),
}

#[derive(clap::Args)]
struct ComposeArgs {
    /// The fine-tuned file whose decoder reads the first prompt and carries masks.
    #[arg(long)]
    weights: PathBuf,
    /// The fine-tuned file whose decoder answers clicked slices (same base and input window).
    #[arg(long)]
    correction: Option<PathBuf>,
    /// The fine-tuned file (any base) that answers slices prompted by points alone.
    #[arg(long)]
    point_assist: Option<PathBuf>,
    /// Moves --weights part of the way back to its base model first (weight-space ensembling,
    /// `finetuned::toward_base`): each tensor becomes base + W * (fine-tuned - base); 1 keeps the
    /// file, 0 is the base.
    #[arg(long, value_name = "W")]
    fine_tuned_weight: Option<f64>,
    /// The composed file (written atomically).
    #[arg(long)]
    out: PathBuf,
}

fn compose(args: ComposeArgs) -> Result<()> {
    use radsam::model::finetuned;
    if args.correction.is_none() && args.point_assist.is_none() && args.fine_tuned_weight.is_none() {
        bail!("compose: give --correction, --point-assist, --fine-tuned-weight or several");
    }
    // Moved toward its base first: the correction head and the assist keep their own tensors.
    let moved = args.out.with_extension("toward-base.partial");
    let main = match args.fine_tuned_weight {
        Some(weight) => {
            let metadata = finetuned::read_metadata(&args.weights)?;
            let base = metadata.get(finetuned::META_BASE_MODEL).map(|b| radsam::assets::weights_path(b));
            let base = base.with_context(|| format!("{}: not a fine-tuned file", args.weights.display()))?;
            let only = args.correction.is_none() && args.point_assist.is_none();
            finetuned::toward_base(&args.weights, &base, weight, if only { &args.out } else { &moved })?;
            if only {
                return report_composed(&args);
            }
            moved.clone()
        }
        None => args.weights.clone(),
    };
    let composed = compose_heads(&main, &args);
    let _ = std::fs::remove_file(&moved);
    composed?;
    report_composed(&args)
}

/// Writes `args.out`: `main` with the correction head, the point assist or both of `args`.
fn compose_heads(main: &std::path::Path, args: &ComposeArgs) -> Result<()> {
    use radsam::model::finetuned;
    match (&args.correction, &args.point_assist) {
        (None, None) => bail!("compose: no correction head or point assist to add to {}", main.display()),
        (Some(correction), None) => finetuned::compose(main, correction, &args.out)?,
        (None, Some(assist)) => finetuned::compose_point_assist(main, assist, &args.out)?,
        (Some(correction), Some(assist)) => {
            // The correction head first (it needs a decoder-only file), then the assist over it.
            let with_head = args.out.with_extension("with-correction.partial");
            finetuned::compose(main, correction, &with_head)?;
            let composed = finetuned::compose_point_assist(&with_head, assist, &args.out);
            let _ = std::fs::remove_file(&with_head);
            composed?;
        }
    }
    Ok(())
}

fn report_composed(args: &ComposeArgs) -> Result<()> {
    let part = |what: &str, p: &Option<PathBuf>| p.as_ref().map(|p| format!(", {what} {}", p.display()));
    let weight = args.fine_tuned_weight.map(|w| format!(" moved toward its base (fine-tuned weight {w})"));
    eprintln!(
        "{}: {}{}{}{}",
        args.out.display(),
        args.weights.display(),
        weight.unwrap_or_default(),
        part("with the correction head of", &args.correction).unwrap_or_default(),
        part("with the point assist", &args.point_assist).unwrap_or_default()
    );
    Ok(())
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Dataset folders (nnU-Net/AMOS imagesTr+labelsTr, or TotalSegmentator cases). Repeatable.
    #[arg(long)]
    data: Vec<PathBuf>,
    /// Explicit training pairs IMAGE=LABELS (NIfTI file or DICOM folder = NIfTI label map). Repeatable.
    #[arg(long)]
    pair: Vec<String>,
    /// Synthetic abdominal phantoms added to the training data.
    #[arg(long, default_value_t = 0)]
    phantoms: usize,
    /// Validation folders / pairs (whole volumes, never trained on).
    #[arg(long)]
    val_data: Vec<PathBuf>,
    #[arg(long)]
    val_pair: Vec<String>,
    /// Without validation data: this fraction of the training volumes (at least one, the last in
    /// name order) is held out for validation. The split is by volume, never by slice.
    #[arg(long, default_value_t = 0.0)]
    val_fraction: f64,
    /// Class names by id for label maps without a dataset.json: a JSON object {"1": "spleen", ...}.
    #[arg(long)]
    label_names: Option<PathBuf>,
    /// Train only on these classes (names); default all.
    #[arg(long, value_delimiter = ',')]
    classes: Vec<String>,
    /// Validate only on these classes (names); default every class of >= --val-min-voxels.
    #[arg(long, value_delimiter = ',')]
    val_classes: Vec<String>,
    #[arg(long, default_value_t = 1000)]
    val_min_voxels: usize,
    /// Base model (architecture and weights): lite_medsam, mobile_sam, ...
    #[arg(long, default_value = "lite_medsam")]
    model: String,
    /// Base weights; default: the fetched weights of --model.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// cpu, cuda, or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long)]
    threads: Option<i32>,
    #[arg(long, default_value_t = 4)]
    epochs: usize,
    #[arg(long, default_value_t = 100)]
    steps_per_epoch: usize,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Edit steps after the first prediction (--min-clicks..=N per batch, uniformly).
    #[arg(long, default_value_t = 3)]
    max_clicks: usize,
    /// The fewest edit steps of a batch (carry batches have none): e.g. 1 to train on corrections only.
    #[arg(long, default_value_t = 0)]
    min_clicks: usize,
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    #[arg(long, default_value_t = 20)]
    warmup_steps: usize,
    #[arg(long, default_value_t = 0.05)]
    final_lr_fraction: f64,
    /// Propagation training: up to N neighbouring slices a carry batch follows, each prompted with
    /// the previous slice's binary prediction, as in inference (0: off).
    #[arg(long, default_value_t = 0)]
    carry_steps: usize,
    /// The fraction of batches that are carry batches (with --carry-steps).
    #[arg(long, default_value_t = 0.25)]
    carry_fraction: f64,
    /// Export an exponential moving average of the weights with this decay, e.g. 0.99 (0: off).
    #[arg(long, default_value_t = 0.0)]
    ema_decay: f64,
    /// Augmentation: the largest shrink of the anatomy (zoom 1 - N); 0.3 covers fields of view up to
    /// ~1.4 x the training scan's. The largest magnification is 0.15.
    #[arg(long, default_value_t = 0.15)]
    max_zoom_out: f64,
    /// Sampling by class: weight 1 / (samples of the class)^N, so that large organs spanning many
    /// slices do not dominate (0: every (slice, object) sample alike; 1: every class alike).
    #[arg(long, default_value_t = 0.0)]
    class_balance: f64,
    /// The fraction of edit clicks at the centre of the largest error component (the CVPR 2025
    /// challenge's click, what a user aiming at the worst error does); the rest uniform over the
    /// error (the paper).
    #[arg(long, default_value_t = 0.0)]
    centre_clicks: f64,
    /// The fraction of edit clicks drawn from the prediction's false pixels where it has any
    /// (negative clicks); the rest over the whole error (0: the paper).
    #[arg(long, default_value_t = 0.0)]
    negative_clicks: f64,
    /// The share of mask prompts that also hold the widened box around the mask, and (with
    /// --carry-steps) of carry batches that hand it on with the carried mask: training for
    /// `radsam bench --carry-cue box` (0: the mask alone, the paper).
    #[arg(long, default_value_t = 0.0)]
    mask_box: f64,
    /// The encoder's input window LO,HI in HU (e.g. -160,240, MedSAM's soft-tissue window), or one
    /// per input channel, LO,HI/LO,HI/LO,HI (R, G, B); default: the base weights' own (RadSAM's
    /// -500,1000 unless the file names another). Saved in the trained file, which every loader
    /// then uses.
    #[arg(long, allow_hyphen_values = true)]
    window: Option<String>,
    /// Views per slice: the original plus N-1 augmented ones.
    #[arg(long, default_value_t = 3)]
    views: usize,
    /// Views per phantom slice (phantoms are many; fewer views keep encoding short).
    #[arg(long, default_value_t = 1)]
    phantom_views: usize,
    #[arg(long, default_value_t = 15)]
    min_pixels: usize,
    /// Train the image encoder too (GPU); default: frozen, embeddings cached.
    #[arg(long)]
    train_encoder: bool,
    /// With --train-encoder: the encoder's learning rate as a share of --lr (e.g. 0.1, so that a
    /// small fine-tune adapts the base encoder rather than overwrites it).
    #[arg(long, default_value_t = 1.0, value_parser = parse_lr_share)]
    encoder_lr_scale: f64,
    /// The mask decoder's learning rate as a share of --lr (e.g. 0.1: the decoder keeps what the
    /// base does with boxes and points while the prompt encoder learns to read masks).
    #[arg(long, default_value_t = 1.0, value_parser = parse_lr_share)]
    decoder_lr_scale: f64,
    /// Turn off mixed precision (on by default on a GPU; never on the CPU).
    #[arg(long)]
    no_amp: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 25)]
    checkpoint_every: usize,
    /// Where the run keeps its config, log, checkpoint and cached embeddings.
    #[arg(long)]
    run_dir: PathBuf,
    /// Cached embeddings (keyed by encoder weights, data and views); default <run-dir>/cache.
    /// Runs over the same data with the same encoder can share one.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// The trained weights (half precision, on top of the base): default <run-dir>/weights.safetensors.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn load_all(pairs: &[dataset::Pair]) -> Result<Vec<LabeledVolume>> {
    pairs
        .iter()
        .map(|p| {
            eprintln!("reading {}", p.image.display());
            dataset::load(p, &ReadLimits::default()).map_err(radsam::error::with_code)
        })
        .collect()
}

fn train(args: TrainArgs) -> Result<()> {
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    radsam::allocator::keep_freed_memory();
    let names = match &args.label_names {
        Some(p) => dataset::read_label_names(p).map_err(radsam::error::with_code)?,
        None => BTreeMap::new(),
    };
    let train_pairs = dataset::gather(&args.data, &args.pair, &names).map_err(radsam::error::with_code)?;
    let val_pairs = dataset::gather(&args.val_data, &args.val_pair, &names).map_err(radsam::error::with_code)?;
    if train_pairs.is_empty() && args.phantoms == 0 {
        bail!("no training data: give --data, --pair or --phantoms");
    }
    let mut train_cases = load_all(&train_pairs)?;
    let mut val_cases = load_all(&val_pairs)?;
    if val_cases.is_empty() && args.val_fraction > 0.0 {
        if train_cases.len() < 2 {
            bail!("--val-fraction needs at least two training volumes (the split is by volume)");
        }
        let k = ((train_cases.len() as f64 * args.val_fraction).round() as usize).clamp(1, train_cases.len() - 1);
        val_cases = train_cases.split_off(train_cases.len() - k);
    }
    let real_cases = train_cases.len();
    let phantoms = dataset::phantom_cases(args.phantoms, &PhantomConfig::default(), args.seed);

    let spec = radsam::model::ModelSpec {
        name: args.model.clone(),
        weights: args.weights.clone(),
        device: args.device.clone(),
        threads: None,
        window: args.window.clone(),
        half: false,
    };
    let model = spec.resolve().map_err(radsam::error::with_code)?;
    let (device, weights) = (model.device, model.weights.clone());
    let mut sam = model.load().map_err(|e| anyhow::anyhow!("loading {}: [{}] {e}", weights.display(), e.code()))?;
    // Starting from a fine-tuned file (a second stage): the trained tensors are written on top of
    // that file's own base, so the result needs only the base to load.
    let (base_model, base_weights) =
        match radsam::model::finetuned::read_metadata(&weights)?.get(radsam::model::finetuned::META_BASE_MODEL) {
            Some(base) => (base.clone(), radsam::assets::weights_path(base)),
            None => (args.model.clone(), weights.clone()),
        };
    eprintln!("{}: input window [{}] HU", args.model, sam.config.window);
    let params = sam.set_trainable(args.train_encoder);
    let n_params: i64 = params.iter().map(|(_, t)| t.numel() as i64).sum();
    eprintln!(
        "{}: {} tensors, {:.2} M parameters learn (encoder {})",
        args.model,
        params.len(),
        n_params as f64 / 1e6,
        if args.train_encoder { "trained" } else { "frozen" }
    );

    if !(0.0..1.0).contains(&args.max_zoom_out) || !(0.0..1.0).contains(&args.ema_decay) {
        bail!("--max-zoom-out and --ema-decay must lie in [0, 1)");
    }
    if ![args.class_balance, args.centre_clicks, args.negative_clicks, args.mask_box]
        .iter()
        .all(|v| (0.0..=1.0).contains(v))
    {
        bail!("--class-balance, --centre-clicks, --negative-clicks and --mask-box must lie in [0, 1]");
    }
    if args.min_clicks > args.max_clicks {
        bail!("--min-clicks ({}) must not exceed --max-clicks ({})", args.min_clicks, args.max_clicks);
    }
    // The random HU shift is sized for the narrowest channel: a soft-tissue channel must keep its
    // anatomy in view.
    let aug = Augmentation {
        max_zoom_out: args.max_zoom_out,
        window: sam.config.window.narrowest(),
        ..Augmentation::default()
    };
    let settings = |views| ExampleSettings {
        views,
        min_pixels: args.min_pixels,
        augmentation: aug,
        seed: args.seed,
        classes: args.classes.clone(),
    };
    let cache = args.cache_dir.clone().unwrap_or_else(|| args.run_dir.join("cache"));
    let batch = radsam::segment::VolumeSession::default_batch(device);
    let frozen = !args.train_encoder;
    let mut set = examples::build(&sam, &train_cases, &settings(args.views), frozen, Some(&cache), batch)?;
    if !phantoms.is_empty() {
        let extra = examples::build(
            &sam,
            &phantoms,
            &ExampleSettings { classes: vec![], ..settings(args.phantom_views) },
            frozen,
            Some(&cache),
            batch,
        )?;
        set = examples::merge(set, extra, real_cases);
    }
    eprintln!(
        "training examples: {} views, {} (slice, object) samples from {} volumes + {} phantoms; validation volumes: {}",
        set.views.len(),
        set.samples.len(),
        real_cases,
        phantoms.len(),
        val_cases.len()
    );

    let sam_ref: &Sam = &sam;
    let mut validation = if val_cases.is_empty() {
        None
    } else {
        Some(ValidationSet::new(sam_ref, &val_cases, args.val_min_voxels, &args.val_classes)?)
    };
    if let Some(v) = &validation {
        eprintln!("validation objects: {}", v.objects.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", "));
    }
    let settings = TrainSettings {
        base_model,
        epochs: args.epochs,
        steps_per_epoch: args.steps_per_epoch,
        batch_size: args.batch_size,
        max_clicks: args.max_clicks,
        min_clicks: args.min_clicks,
        learning_rate: args.lr,
        weight_decay: args.weight_decay,
        warmup_steps: args.warmup_steps,
        final_lr_fraction: args.final_lr_fraction,
        train_encoder: args.train_encoder,
        mixed_precision: !args.no_amp && device.is_cuda(),
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        prompt_mix: PromptMix::with_mask_boxes(args.mask_box),
        carry_steps: args.carry_steps,
        // Stored only when it matters, so that a run without carry training resumes under any default.
        carry_fraction: if args.carry_steps > 0 { args.carry_fraction } else { 0.0 },
        ema_decay: args.ema_decay,
        class_balance: args.class_balance,
        centre_clicks: args.centre_clicks,
        negative_clicks: args.negative_clicks,
        carry_box: if args.carry_steps > 0 { args.mask_box } else { 0.0 },
        encoder_lr_scale: if args.train_encoder { args.encoder_lr_scale } else { 1.0 },
        decoder_lr_scale: args.decoder_lr_scale,
    };
    let mut trainer = Trainer::new(sam_ref, params, settings, &args.run_dir, &base_weights)?;
    trainer.run(&set, &mut validation)?;
    let out = args.out.clone().unwrap_or_else(|| args.run_dir.join("weights.safetensors"));
    let data: Vec<String> = train_pairs.iter().map(|p| p.image.display().to_string()).collect();
    let mut meta = BTreeMap::from([
        ("radsam.training_data".to_string(), serde_json::to_string(&data)?),
        ("radsam.phantoms".to_string(), args.phantoms.to_string()),
        ("radsam.initial_weights".to_string(), weights.display().to_string()),
        (radsam::model::finetuned::META_INPUT_WINDOW.to_string(), sam_ref.config.window.to_string()),
    ]);
    // A correction head is written back unchanged (Trainer::export): so is where it came from.
    let initial = radsam::model::finetuned::read_metadata(&weights)?;
    for key in [radsam::model::finetuned::META_CORRECTION_FROM, radsam::model::finetuned::META_CORRECTION_SETTINGS] {
        if let Some(v) = initial.get(key).filter(|_| sam_ref.has_correction_head()) {
            meta.insert(key.to_string(), v.clone());
        }
    }
    trainer.export(&out, meta)?;
    eprintln!("weights: {}", out.display());
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Train(a) => train(a),
        Command::Serve(a) => serve::serve(a),
        Command::Compose(a) => compose(a),
    }
}
