//! What the commands share: model loading, argument parsing helpers, volume opening.

use anyhow::{bail, Context, Result};
use radsam::model::{ModelSpec, Sam};
use radsam::prompt::Point;
use radsam::segment::MaskChoice;
use radsam::volume::{ReadLimits, Volume};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ModelArgs {
    /// Model: radsam (this project's RadSAM weights), lite_medsam, mobile_sam, sam_vit_b, sam_vit_l,
    /// sam_vit_h, medsam_vit_b.
    #[arg(long, default_value = "radsam")]
    pub model: String,
    /// Safetensors weights; default: the fetched weights of --model in $RADSAM_CACHE.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// cpu, cuda, or auto (cuda when available).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Intra-op threads for libtorch on CPU (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// The encoder's input window LO,HI in HU, instead of the model's own (the weights file's, or
    /// RadSAM's -500,1000): e.g. -160,240 runs LiteMedSAM on MedSAM's soft-tissue window;
    /// LO,HI/LO,HI/LO,HI gives each input channel (R, G, B) its own window.
    #[arg(long, allow_hyphen_values = true)]
    pub window: Option<String>,
    /// On CUDA: run the model in mixed precision (f16 autocast: tensor cores, half the memory
    /// traffic); ignored on CPU. Embeddings cached in this mode are kept apart from f32 ones.
    #[arg(long, env = "RADSAM_HALF")]
    pub half: bool,
}

impl ModelArgs {
    /// The model as the loader takes it (radsam::model::ModelSpec: one resolution for every binary).
    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            name: self.model.clone(),
            weights: self.weights.clone(),
            device: self.device.clone(),
            threads: self.threads,
            window: self.window.clone(),
            half: self.half,
        }
    }
}

pub fn load_model(args: &ModelArgs) -> Result<Sam> {
    args.spec().load().map_err(radsam::error::with_code)
}

pub fn parse_point(s: &str) -> Result<Point> {
    let parts: Vec<&str> = s.split(',').collect();
    let [x, y, l] = parts.as_slice() else { bail!("--point {s}: expected x,y,pos or x,y,neg") };
    let positive = match *l {
        "pos" | "1" | "+" => true,
        "neg" | "0" | "-" => false,
        _ => bail!("--point {s}: label must be pos or neg"),
    };
    Ok(Point { x: x.trim().parse().context("point x")?, y: y.trim().parse().context("point y")?, positive })
}

pub fn parse_choice(s: &str) -> Result<MaskChoice> {
    Ok(match s {
        "primary" => MaskChoice::Primary,
        "best-iou" => MaskChoice::BestPredictedIou,
        "continuity" => MaskChoice::Continuity,
        i => match i.parse::<i64>() {
            Ok(i @ 0..=3) => MaskChoice::Index(i),
            _ => bail!("--mask-choice {s}: expected primary, best-iou, continuity or 0..3"),
        },
    })
}

/// The reference mask of `label` on slice k, row-major (y rows, x columns).
pub fn reference_slice(reference: &Volume, label: u32, k: usize) -> Vec<u8> {
    reference.grid.extract(&reference.data, k).iter().map(|&v| (v.round() as i64 == label as i64) as u8).collect()
}

pub fn open_volume(path: &Path, series_uid: Option<&str>, limits: &ReadLimits) -> Result<Volume> {
    Volume::open(path, series_uid, limits).map_err(radsam::error::with_code)
}

pub fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(v)?).with_context(|| format!("writing {}", path.display()))
}
