//! The two-way transformer of SAM's mask decoder: prompt tokens and image tokens attend to each
//! other in both directions. Mirrors `transformer.py`.

use super::layers::MlpBlock;
use tch::{nn, Kind, Tensor};

#[derive(Debug)]
struct Attention {
    num_heads: i64,
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    out_proj: nn::Linear,
}

impl Attention {
    fn new(p: nn::Path, dim: i64, num_heads: i64, downsample_rate: i64) -> Self {
        let internal = dim / downsample_rate;
        let c = Default::default;
        Self {
            num_heads,
            q_proj: nn::linear(&p / "q_proj", dim, internal, c()),
            k_proj: nn::linear(&p / "k_proj", dim, internal, c()),
            v_proj: nn::linear(&p / "v_proj", dim, internal, c()),
            out_proj: nn::linear(&p / "out_proj", internal, dim, c()),
        }
    }

    fn separate_heads(&self, x: &Tensor) -> Tensor {
        let (b, n, c) = x.size3().unwrap();
        x.reshape([b, n, self.num_heads, c / self.num_heads]).transpose(1, 2)
    }

    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let q = self.separate_heads(&q.apply(&self.q_proj));
        let k = self.separate_heads(&k.apply(&self.k_proj));
        let v = self.separate_heads(&v.apply(&self.v_proj));
        let c_per_head = q.size()[3] as f64;
        let attn = (q.matmul(&k.permute([0, 1, 3, 2])) / c_per_head.sqrt()).softmax(-1, Kind::Float);
        let out = attn.matmul(&v);
        let (b, h, n, c) = out.size4().unwrap();
        out.transpose(1, 2).reshape([b, n, h * c]).apply(&self.out_proj)
    }
}

#[derive(Debug)]
struct TwoWayBlock {
    self_attn: Attention,
    norm1: nn::LayerNorm,
    cross_token_to_image: Attention,
    norm2: nn::LayerNorm,
    mlp: MlpBlock,
    norm3: nn::LayerNorm,
    norm4: nn::LayerNorm,
    cross_image_to_token: Attention,
    skip_first_layer_pe: bool,
}

impl TwoWayBlock {
    fn new(p: nn::Path, dim: i64, heads: i64, mlp_dim: i64, skip_first_layer_pe: bool) -> Self {
        let ln = |name: &str| nn::layer_norm(&p / name, vec![dim], Default::default());
        Self {
            self_attn: Attention::new(&p / "self_attn", dim, heads, 1),
            norm1: ln("norm1"),
            cross_token_to_image: Attention::new(&p / "cross_attn_token_to_image", dim, heads, 2),
            norm2: ln("norm2"),
            mlp: MlpBlock::new(&p / "mlp", dim, mlp_dim, false),
            norm3: ln("norm3"),
            norm4: ln("norm4"),
            cross_image_to_token: Attention::new(&p / "cross_attn_image_to_token", dim, heads, 2),
            skip_first_layer_pe,
        }
    }

    fn forward(&self, queries: &Tensor, keys: &Tensor, query_pe: &Tensor, key_pe: &Tensor) -> (Tensor, Tensor) {
        let queries = if self.skip_first_layer_pe {
            self.self_attn.forward(queries, queries, queries)
        } else {
            let q = queries + query_pe;
            queries + self.self_attn.forward(&q, &q, queries)
        };
        let queries = queries.apply(&self.norm1);

        let q = &queries + query_pe;
        let k = keys + key_pe;
        let queries = (&queries + self.cross_token_to_image.forward(&q, &k, keys)).apply(&self.norm2);

        let queries = (&queries + self.mlp.forward(&queries)).apply(&self.norm3);

        let q = &queries + query_pe;
        let keys = (keys + self.cross_image_to_token.forward(&k, &q, &queries)).apply(&self.norm4);
        (queries, keys)
    }
}

#[derive(Debug)]
pub struct TwoWayTransformer {
    layers: Vec<TwoWayBlock>,
    final_attn: Attention,
    norm_final: nn::LayerNorm,
}

impl TwoWayTransformer {
    pub fn new(p: nn::Path, depth: i64, dim: i64, heads: i64, mlp_dim: i64) -> Self {
        let lp = &p / "layers";
        Self {
            layers: (0..depth).map(|i| TwoWayBlock::new(&lp / i, dim, heads, mlp_dim, i == 0)).collect(),
            final_attn: Attention::new(&p / "final_attn_token_to_image", dim, heads, 2),
            norm_final: nn::layer_norm(&p / "norm_final_attn", vec![dim], Default::default()),
        }
    }

    /// image (B, C, H, W), image_pe (B, C, H, W), tokens (B, N, C) -> (tokens, image tokens (B, HW, C)).
    pub fn forward(&self, image: &Tensor, image_pe: &Tensor, tokens: &Tensor) -> (Tensor, Tensor) {
        let keys0 = image.flatten(2, -1).permute([0, 2, 1]);
        let key_pe = image_pe.flatten(2, -1).permute([0, 2, 1]);
        let mut queries = tokens.shallow_clone();
        let mut keys = keys0;
        for layer in &self.layers {
            (queries, keys) = layer.forward(&queries, &keys, tokens, &key_pe);
        }
        let q = &queries + tokens;
        let k = &keys + &key_pe;
        let queries = (&queries + self.final_attn.forward(&q, &k, &keys)).apply(&self.norm_final);
        (queries, keys)
    }
}
