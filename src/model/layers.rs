//! Building blocks shared by the SAM-family networks: LayerNorm over channels, convolution fused
//! with batch norm (TinyViT), and the small MLPs of the decoder. Parameter names follow the
//! PyTorch modules so that official checkpoints load by name.

use tch::{nn, Kind, Tensor};

/// LayerNorm over the channel axis of an NCHW tensor (SAM's `LayerNorm2d`, eps 1e-6).
#[derive(Debug)]
pub struct LayerNorm2d {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm2d {
    pub fn new(p: nn::Path, channels: i64) -> Self {
        Self {
            weight: p.var("weight", &[channels], nn::Init::Const(1.0)),
            bias: p.var("bias", &[channels], nn::Init::Const(0.0)),
            eps: 1e-6,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        // The same arithmetic as the reference (mean, biased variance, sqrt), so outputs match bit-closely.
        let u = x.mean_dim(1, true, Kind::Float);
        let d = x - u;
        let s = d.square().mean_dim(1, true, Kind::Float);
        let x = d / (s + self.eps).sqrt();
        x * self.weight.view([-1, 1, 1]) + self.bias.view([-1, 1, 1])
    }
}

/// TinyViT's `Conv2d_BN`: a bias-free convolution followed by BatchNorm2d. For inference the two
/// are folded into one convolution (`fuse`), which is exact up to rounding and saves a pass.
#[derive(Debug)]
pub struct Conv2dBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    stride: i64,
    padding: i64,
    groups: i64,
    fused: Option<(Tensor, Tensor)>,
}

impl Conv2dBn {
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, padding: i64, groups: i64) -> Self {
        let cfg = nn::ConvConfig { stride, padding, groups, bias: false, ..Default::default() };
        let conv = nn::conv2d(&p / "c", c_in, c_out, kernel, cfg);
        let bn = nn::batch_norm2d(&p / "bn", c_out, Default::default());
        Self { conv, bn, stride, padding, groups, fused: None }
    }

    /// Folds the batch-norm statistics into the convolution. Call again after weights change.
    pub fn fuse(&mut self) {
        let _guard = tch::no_grad_guard();
        let gamma = self.bn.ws.as_ref().expect("affine batch norm");
        let beta = self.bn.bs.as_ref().expect("affine batch norm");
        let scale = gamma / (&self.bn.running_var + 1e-5).sqrt();
        let weight = &self.conv.ws * scale.view([-1, 1, 1, 1]);
        let bias = beta - &self.bn.running_mean * &scale;
        self.fused = Some((weight, bias));
    }

    /// Back to the unfolded convolution + batch norm (frozen statistics), so that gradients reach
    /// the checkpoint's own parameters when the encoder is trained.
    pub fn unfuse(&mut self) {
        self.fused = None;
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        match &self.fused {
            Some((w, b)) => {
                x.conv2d(w, Some(b), [self.stride, self.stride], [self.padding, self.padding], [1, 1], self.groups)
            }
            None => x.apply(&self.conv).apply_t(&self.bn, false),
        }
    }
}

/// SAM's `MLP` (decoder hypernetworks and IoU head): linear layers with ReLU between them.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
}

impl Mlp {
    pub fn new(p: nn::Path, input: i64, hidden: i64, output: i64, num_layers: usize) -> Self {
        let p = &p / "layers";
        let layers = (0..num_layers)
            .map(|i| {
                let i_dim = if i == 0 { input } else { hidden };
                let o_dim = if i + 1 == num_layers { output } else { hidden };
                nn::linear(&p / i as i64, i_dim, o_dim, Default::default())
            })
            .collect();
        Self { layers }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let last = self.layers.len() - 1;
        let mut x = x.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            x = x.apply(layer);
            if i < last {
                x = x.relu();
            }
        }
        x
    }
}

/// SAM's `MLPBlock`: lin1, activation, lin2.
#[derive(Debug)]
pub struct MlpBlock {
    lin1: nn::Linear,
    lin2: nn::Linear,
    gelu: bool,
}

impl MlpBlock {
    pub fn new(p: nn::Path, dim: i64, hidden: i64, gelu: bool) -> Self {
        Self {
            lin1: nn::linear(&p / "lin1", dim, hidden, Default::default()),
            lin2: nn::linear(&p / "lin2", hidden, dim, Default::default()),
            gelu,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let h = x.apply(&self.lin1);
        let h = if self.gelu { h.gelu("none") } else { h.relu() };
        h.apply(&self.lin2)
    }
}

/// The two-convolution neck shared by the ViT and TinyViT encoders (`neck.0..3`).
#[derive(Debug)]
pub struct Neck {
    conv1: nn::Conv2D,
    norm1: LayerNorm2d,
    conv2: nn::Conv2D,
    norm2: LayerNorm2d,
}

impl Neck {
    pub fn new(p: nn::Path, c_in: i64, c_out: i64) -> Self {
        let no_bias = nn::ConvConfig { bias: false, ..Default::default() };
        Self {
            conv1: nn::conv2d(&p / 0, c_in, c_out, 1, no_bias),
            norm1: LayerNorm2d::new(&p / 1, c_out),
            conv2: nn::conv2d(&p / 2, c_out, c_out, 3, nn::ConvConfig { padding: 1, ..no_bias }),
            norm2: LayerNorm2d::new(&p / 3, c_out),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let x = self.norm1.forward(&x.apply(&self.conv1));
        self.norm2.forward(&x.apply(&self.conv2))
    }
}
