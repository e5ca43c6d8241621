//! The ViT image encoder of SAM (ViT-B/L/H; MedSAM uses the ViT-B layout): 16x16 patches, absolute
//! position embedding, blocks with windowed attention except at the global-attention indexes,
//! decomposed relative positions, and the convolutional neck. Mirrors `image_encoder.py`.

use super::layers::{MlpBlock, Neck};
use tch::{nn, Kind, Tensor};

#[derive(Debug, Clone, PartialEq)]
pub struct VitConfig {
    pub img_size: i64,
    pub patch_size: i64,
    pub embed_dim: i64,
    pub depth: i64,
    pub num_heads: i64,
    pub window_size: i64,
    pub global_attn_indexes: Vec<i64>,
    pub out_chans: i64,
}

impl VitConfig {
    pub fn embedding_size(&self) -> i64 {
        self.img_size / self.patch_size
    }

    fn preset(embed_dim: i64, depth: i64, num_heads: i64, global: &[i64]) -> Self {
        Self {
            img_size: 1024,
            patch_size: 16,
            embed_dim,
            depth,
            num_heads,
            window_size: 14,
            global_attn_indexes: global.to_vec(),
            out_chans: 256,
        }
    }
    pub fn vit_b() -> Self {
        Self::preset(768, 12, 12, &[2, 5, 8, 11])
    }
    pub fn vit_l() -> Self {
        Self::preset(1024, 24, 16, &[5, 11, 17, 23])
    }
    pub fn vit_h() -> Self {
        Self::preset(1280, 32, 16, &[7, 15, 23, 31])
    }
}

/// Multi-head attention with decomposed relative position terms (MViTv2).
#[derive(Debug)]
struct Attention {
    num_heads: i64,
    scale: f64,
    qkv: nn::Linear,
    proj: nn::Linear,
    rel_pos_h: Tensor,
    rel_pos_w: Tensor,
}

/// Relative position embeddings for every (query, key) pair along one axis; `rel_pos` is
/// resized by linear interpolation when it was trained for another size, as the reference does.
fn get_rel_pos(q_size: i64, k_size: i64, rel_pos: &Tensor) -> Tensor {
    let max_rel_dist = 2 * q_size.max(k_size) - 1;
    let resized = if rel_pos.size()[0] != max_rel_dist {
        let l = rel_pos.size()[0];
        rel_pos
            .reshape([1, l, -1])
            .permute([0, 2, 1])
            .upsample_linear1d([max_rel_dist], false, None)
            .reshape([-1, max_rel_dist])
            .permute([1, 0])
    } else {
        rel_pos.shallow_clone()
    };
    let (qf, kf) = (q_size as f64, k_size as f64);
    let q_scale = (kf / qf).max(1.0);
    let k_scale = (qf / kf).max(1.0);
    let idx: Vec<i64> = (0..q_size)
        .flat_map(|q| {
            (0..k_size).map(move |k| ((q as f64) * q_scale - (k as f64) * k_scale + (kf - 1.0) * k_scale) as i64)
        })
        .collect();
    let idx = Tensor::from_slice(&idx).to_device(rel_pos.device());
    resized.index_select(0, &idx).view([q_size, k_size, -1])
}

impl Attention {
    fn new(p: nn::Path, dim: i64, num_heads: i64, input_size: i64) -> Self {
        let head_dim = dim / num_heads;
        Self {
            num_heads,
            scale: (head_dim as f64).powf(-0.5),
            qkv: nn::linear(&p / "qkv", dim, dim * 3, Default::default()),
            proj: nn::linear(&p / "proj", dim, dim, Default::default()),
            rel_pos_h: p.var("rel_pos_h", &[2 * input_size - 1, head_dim], nn::Init::Const(0.0)),
            rel_pos_w: p.var("rel_pos_w", &[2 * input_size - 1, head_dim], nn::Init::Const(0.0)),
        }
    }

    /// x: (B, H, W, C) -> (B, H, W, C)
    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, h, w, _) = x.size4().unwrap();
        let nh = self.num_heads;
        let qkv =
            x.apply(&self.qkv).reshape([b, h * w, 3, nh, -1]).permute([2, 0, 3, 1, 4]).reshape([3, b * nh, h * w, -1]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let attn = (&q * self.scale).matmul(&k.transpose(-2, -1));
        let rh = get_rel_pos(h, h, &self.rel_pos_h);
        let rw = get_rel_pos(w, w, &self.rel_pos_w);
        let r_q = q.reshape([b * nh, h, w, -1]);
        let rel_h = Tensor::einsum("bhwc,hkc->bhwk", &[&r_q, &rh], None::<i64>);
        let rel_w = Tensor::einsum("bhwc,wkc->bhwk", &[&r_q, &rw], None::<i64>);
        let attn =
            (attn.view([b * nh, h, w, h, w]) + rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)).view([b * nh, h * w, h * w]);
        let attn = attn.softmax(-1, Kind::Float);
        attn.matmul(&v).view([b, nh, h, w, -1]).permute([0, 2, 3, 1, 4]).reshape([b, h, w, -1]).apply(&self.proj)
    }
}

#[derive(Debug)]
struct Block {
    norm1: nn::LayerNorm,
    attn: Attention,
    norm2: nn::LayerNorm,
    mlp: MlpBlock,
    window_size: i64,
}

fn window_partition(x: &Tensor, ws: i64) -> (Tensor, (i64, i64)) {
    let (b, h, w, c) = x.size4().unwrap();
    let pad_h = (ws - h % ws) % ws;
    let pad_w = (ws - w % ws) % ws;
    let x = if pad_h > 0 || pad_w > 0 { x.constant_pad_nd([0, 0, 0, pad_w, 0, pad_h]) } else { x.shallow_clone() };
    let (hp, wp) = (h + pad_h, w + pad_w);
    let windows =
        x.view([b, hp / ws, ws, wp / ws, ws, c]).permute([0, 1, 3, 2, 4, 5]).contiguous().view([-1, ws, ws, c]);
    (windows, (hp, wp))
}

fn window_unpartition(windows: &Tensor, ws: i64, (hp, wp): (i64, i64), (h, w): (i64, i64)) -> Tensor {
    let b = windows.size()[0] / (hp * wp / ws / ws);
    let x =
        windows.view([b, hp / ws, wp / ws, ws, ws, -1]).permute([0, 1, 3, 2, 4, 5]).contiguous().view([b, hp, wp, -1]);
    if hp > h || wp > w {
        x.narrow(1, 0, h).narrow(2, 0, w).contiguous()
    } else {
        x
    }
}

impl Block {
    fn new(p: nn::Path, cfg: &VitConfig, window_size: i64) -> Self {
        let dim = cfg.embed_dim;
        let ln = nn::LayerNormConfig { eps: 1e-6, ..Default::default() };
        let input_size = if window_size == 0 { cfg.embedding_size() } else { window_size };
        Self {
            norm1: nn::layer_norm(&p / "norm1", vec![dim], ln),
            attn: Attention::new(&p / "attn", dim, cfg.num_heads, input_size),
            norm2: nn::layer_norm(&p / "norm2", vec![dim], ln),
            mlp: MlpBlock::new(&p / "mlp", dim, dim * 4, true),
            window_size,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let h = x.apply(&self.norm1);
        let h = if self.window_size > 0 {
            let (hh, ww) = (h.size()[1], h.size()[2]);
            let (windows, pad_hw) = window_partition(&h, self.window_size);
            window_unpartition(&self.attn.forward(&windows), self.window_size, pad_hw, (hh, ww))
        } else {
            self.attn.forward(&h)
        };
        let x = x + h;
        let m = self.mlp.forward(&x.apply(&self.norm2));
        x + m
    }
}

#[derive(Debug)]
pub struct Vit {
    patch_embed: nn::Conv2D,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    neck: Neck,
}

impl Vit {
    pub fn new(p: nn::Path, cfg: &VitConfig) -> Self {
        let g = cfg.embedding_size();
        let patch_cfg = nn::ConvConfig { stride: cfg.patch_size, ..Default::default() };
        let blocks_p = &p / "blocks";
        Self {
            patch_embed: nn::conv2d(&p / "patch_embed" / "proj", 3, cfg.embed_dim, cfg.patch_size, patch_cfg),
            pos_embed: p.var("pos_embed", &[1, g, g, cfg.embed_dim], nn::Init::Const(0.0)),
            blocks: (0..cfg.depth)
                .map(|i| {
                    let ws = if cfg.global_attn_indexes.contains(&i) { 0 } else { cfg.window_size };
                    Block::new(&blocks_p / i, cfg, ws)
                })
                .collect(),
            neck: Neck::new(&p / "neck", cfg.embed_dim, cfg.out_chans),
        }
    }

    /// (B, 3, S, S) -> (B, out_chans, S/16, S/16)
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut x = x.apply(&self.patch_embed).permute([0, 2, 3, 1]) + &self.pos_embed;
        for blk in &self.blocks {
            x = blk.forward(&x);
        }
        self.neck.forward(&x.permute([0, 3, 1, 2]))
    }
}
