//! SAM's mask decoder. It always returns all four masks: index 0 is the primary (single-mask)
//! output, 1..=3 the secondary (multimask) outputs, with an IoU prediction for each.
//! Mirrors `mask_decoder.py::predict_masks`.

use super::layers::{LayerNorm2d, Mlp};
use super::transformer::TwoWayTransformer;
use tch::{nn, Tensor};

pub const NUM_MASKS: i64 = 4;

#[derive(Debug)]
pub struct MaskDecoder {
    transformer: TwoWayTransformer,
    iou_token: Tensor,
    mask_tokens: Tensor,
    upscale1: nn::ConvTranspose2D,
    upscale_norm: LayerNorm2d,
    upscale2: nn::ConvTranspose2D,
    hypernetworks: Vec<Mlp>,
    iou_head: Mlp,
}

/// Decoder output for a batch of B prompts.
#[derive(Debug)]
pub struct MaskPrediction {
    /// (B, 4, 4E, 4E) mask logits on the low-resolution grid.
    pub low_res_logits: Tensor,
    /// (B, 4) predicted IoU of each mask.
    pub iou: Tensor,
}

impl MaskDecoder {
    pub fn new(p: nn::Path, dim: i64) -> Self {
        let up = &p / "output_upscaling";
        let s2 = nn::ConvTransposeConfig { stride: 2, ..Default::default() };
        let hp = &p / "output_hypernetworks_mlps";
        Self {
            transformer: TwoWayTransformer::new(&p / "transformer", 2, dim, 8, 2048),
            iou_token: (&p / "iou_token").var("weight", &[1, dim], nn::Init::Randn { mean: 0.0, stdev: 1.0 }),
            mask_tokens: (&p / "mask_tokens").var(
                "weight",
                &[NUM_MASKS, dim],
                nn::Init::Randn { mean: 0.0, stdev: 1.0 },
            ),
            upscale1: nn::conv_transpose2d(&up / 0, dim, dim / 4, 2, s2),
            upscale_norm: LayerNorm2d::new(&up / 1, dim / 4),
            upscale2: nn::conv_transpose2d(&up / 3, dim / 4, dim / 8, 2, s2),
            hypernetworks: (0..NUM_MASKS).map(|i| Mlp::new(&hp / i, dim, dim, dim / 8, 3)).collect(),
            iou_head: Mlp::new(&p / "iou_prediction_head", dim, 256, NUM_MASKS, 3),
        }
    }

    /// image_embeddings: (B, C, E, E), or (1, C, E, E) shared by all B prompts.
    pub fn forward(
        &self,
        image_embeddings: &Tensor,
        image_pe: &Tensor,
        sparse: &Tensor,
        dense: &Tensor,
    ) -> MaskPrediction {
        let bs = sparse.size()[0];
        let output_tokens =
            Tensor::cat(&[&self.iou_token, &self.mask_tokens], 0).unsqueeze(0).expand([bs, -1, -1], false);
        let tokens = Tensor::cat(&[output_tokens, sparse.shallow_clone()], 1);
        let src = if image_embeddings.size()[0] == bs {
            image_embeddings + dense
        } else {
            image_embeddings.expand([bs, -1, -1, -1], false) + dense
        };
        let pos = image_pe.expand([bs, -1, -1, -1], false);
        let (b, c, h, w) = src.size4().unwrap();
        let (hs, src) = self.transformer.forward(&src, &pos, &tokens);
        let iou_token_out = hs.select(1, 0);
        let src = src.transpose(1, 2).reshape([b, c, h, w]);
        let up = self.upscale_norm.forward(&src.apply(&self.upscale1)).gelu("none");
        let up = up.apply(&self.upscale2).gelu("none");
        let hyper: Vec<Tensor> =
            self.hypernetworks.iter().enumerate().map(|(i, m)| m.forward(&hs.select(1, 1 + i as i64))).collect();
        let hyper = Tensor::stack(&hyper, 1);
        let (b, c, h, w) = up.size4().unwrap();
        let masks = hyper.matmul(&up.view([b, c, h * w])).view([b, -1, h, w]);
        MaskPrediction { low_res_logits: masks, iou: self.iou_head.forward(&iou_token_out) }
    }
}
