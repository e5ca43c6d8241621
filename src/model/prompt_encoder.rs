//! SAM's prompt encoder: points (positive, negative) and box corners become sparse tokens through a
//! random-Fourier position encoding; a mask prompt (RadSAM feeds binary masks) becomes a dense
//! embedding through a small strided CNN. Mirrors `prompt_encoder.py`.

use super::layers::LayerNorm2d;
use tch::{nn, Kind, Tensor};

/// Prompts for a batch of B slices, in the model's input pixel frame (after resize, before
/// padding). Any combination may be given; with none, the model still answers (no-prompt tokens).
#[derive(Debug, Default)]
pub struct PromptBatch {
    /// (B, N, 2) x,y coordinates and (B, N) labels: 1 positive, 0 negative, -1 padding.
    pub points: Option<(Tensor, Tensor)>,
    /// (B, 4) x0, y0, x1, y1.
    pub boxes: Option<Tensor>,
    /// (B, 1, 4E, 4E) mask prompt on the low-resolution grid (256x256 for E = 64).
    pub masks: Option<Tensor>,
}

impl PromptBatch {
    pub fn batch_size(&self) -> i64 {
        if let Some((p, _)) = &self.points {
            p.size()[0]
        } else if let Some(b) = &self.boxes {
            b.size()[0]
        } else if let Some(m) = &self.masks {
            m.size()[0]
        } else {
            1
        }
    }
}

#[derive(Debug)]
pub struct PromptEncoder {
    embed_dim: i64,
    embedding_size: i64,
    input_size: i64,
    gaussian: Tensor,
    point_embeddings: Vec<Tensor>,
    not_a_point: Tensor,
    mask_conv1: nn::Conv2D,
    mask_norm1: LayerNorm2d,
    mask_conv2: nn::Conv2D,
    mask_norm2: LayerNorm2d,
    mask_conv3: nn::Conv2D,
    no_mask: Tensor,
}

impl PromptEncoder {
    pub fn new(p: nn::Path, embed_dim: i64, embedding_size: i64, input_size: i64) -> Self {
        let mask_in = 16;
        let s2 = nn::ConvConfig { stride: 2, ..Default::default() };
        let md = &p / "mask_downscaling";
        let pe = &p / "point_embeddings";
        Self {
            embed_dim,
            embedding_size,
            input_size,
            gaussian: (&p / "pe_layer").var(
                "positional_encoding_gaussian_matrix",
                &[2, embed_dim / 2],
                nn::Init::Randn { mean: 0.0, stdev: 1.0 },
            ),
            point_embeddings: (0..4)
                .map(|i| (&pe / i).var("weight", &[1, embed_dim], nn::Init::Randn { mean: 0.0, stdev: 1.0 }))
                .collect(),
            not_a_point: (&p / "not_a_point_embed").var(
                "weight",
                &[1, embed_dim],
                nn::Init::Randn { mean: 0.0, stdev: 1.0 },
            ),
            mask_conv1: nn::conv2d(&md / 0, 1, mask_in / 4, 2, s2),
            mask_norm1: LayerNorm2d::new(&md / 1, mask_in / 4),
            mask_conv2: nn::conv2d(&md / 3, mask_in / 4, mask_in, 2, s2),
            mask_norm2: LayerNorm2d::new(&md / 4, mask_in),
            mask_conv3: nn::conv2d(&md / 6, mask_in, embed_dim, 1, Default::default()),
            no_mask: (&p / "no_mask_embed").var("weight", &[1, embed_dim], nn::Init::Randn { mean: 0.0, stdev: 1.0 }),
        }
    }

    /// Side of the low-resolution mask grid (4x the embedding grid).
    pub fn mask_input_size(&self) -> i64 {
        4 * self.embedding_size
    }

    /// Fourier features of coordinates already normalised to [0, 1]: (..., 2) -> (..., C).
    fn pe_encoding(&self, coords: &Tensor) -> Tensor {
        let c = (coords * 2.0 - 1.0).matmul(&self.gaussian) * (2.0 * std::f64::consts::PI);
        Tensor::cat(&[c.sin(), c.cos()], -1)
    }

    fn pe_with_coords(&self, coords: &Tensor) -> Tensor {
        self.pe_encoding(&(coords / self.input_size as f64))
    }

    /// Dense position encoding of the embedding grid: (1, C, E, E).
    pub fn dense_pe(&self) -> Tensor {
        let e = self.embedding_size;
        let grid = Tensor::ones([e, e], (Kind::Float, self.gaussian.device()));
        let y = (grid.cumsum(0, Kind::Float) - 0.5) / e as f64;
        let x = (grid.cumsum(1, Kind::Float) - 0.5) / e as f64;
        self.pe_encoding(&Tensor::stack(&[x, y], -1)).permute([2, 0, 1]).unsqueeze(0)
    }

    fn embed_points(&self, coords: &Tensor, labels: &Tensor, pad: bool) -> Tensor {
        let mut coords = coords + 0.5; // centre of the pixel
        let mut labels = labels.to_kind(Kind::Float);
        if pad {
            let b = coords.size()[0];
            coords = Tensor::cat(&[coords, Tensor::zeros([b, 1, 2], (Kind::Float, self.gaussian.device()))], 1);
            labels = Tensor::cat(&[labels, Tensor::full([b, 1], -1.0, (Kind::Float, self.gaussian.device()))], 1);
        }
        let pe = self.pe_with_coords(&coords);
        let l = labels.unsqueeze(-1);
        // The reference zeroes padding points, then adds the learned embedding of each label.
        let pe = pe.where_self(&l.ne(-1.0), &self.not_a_point.expand_as(&pe));
        pe + &self.point_embeddings[0] * l.eq(0.0).to_kind(Kind::Float)
            + &self.point_embeddings[1] * l.eq(1.0).to_kind(Kind::Float)
    }

    fn embed_boxes(&self, boxes: &Tensor) -> Tensor {
        let corners = self.pe_with_coords(&(boxes + 0.5).reshape([-1, 2, 2]));
        let add = Tensor::cat(&[&self.point_embeddings[2], &self.point_embeddings[3]], 0).unsqueeze(0);
        corners + add
    }

    fn embed_masks(&self, masks: &Tensor) -> Tensor {
        let x = self.mask_norm1.forward(&masks.apply(&self.mask_conv1)).gelu("none");
        let x = self.mask_norm2.forward(&x.apply(&self.mask_conv2)).gelu("none");
        x.apply(&self.mask_conv3)
    }

    /// Sparse (B, N, C) and dense (B, C, E, E) prompt embeddings.
    pub fn forward(&self, prompts: &PromptBatch) -> (Tensor, Tensor) {
        let bs = prompts.batch_size();
        let device = self.gaussian.device();
        let mut sparse = Vec::new();
        if let Some((coords, labels)) = &prompts.points {
            sparse.push(self.embed_points(coords, labels, prompts.boxes.is_none()));
        }
        if let Some(boxes) = &prompts.boxes {
            sparse.push(self.embed_boxes(boxes));
        }
        let sparse = if sparse.is_empty() {
            Tensor::zeros([bs, 0, self.embed_dim], (Kind::Float, device))
        } else {
            Tensor::cat(&sparse, 1)
        };
        let dense = match &prompts.masks {
            Some(m) => self.embed_masks(m),
            None => {
                self.no_mask.reshape([1, -1, 1, 1]).expand([bs, -1, self.embedding_size, self.embedding_size], false)
            }
        };
        (sparse, dense)
    }
}
