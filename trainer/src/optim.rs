//! AdamW with decoupled weight decay, a warm-up + cosine learning-rate schedule, and a dynamic loss
//! scale for half-precision training on a GPU. Written out (rather than tch's optimizer) so that its
//! moments can be checkpointed: a resumed run continues exactly where the killed one stopped.

use std::collections::HashMap;
use tch::{Kind, Tensor};

pub struct AdamW {
    params: Vec<(String, Tensor)>,
    /// Each parameter's share of the scheduled learning rate (1 unless `scale_lr` lowered it).
    lr_scales: Vec<f64>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub step: i64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamW {
    pub fn new(params: Vec<(String, Tensor)>, weight_decay: f64) -> Self {
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let lr_scales = vec![1.0; params.len()];
        Self { params, lr_scales, m, v, step: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay }
    }

    /// Gives the parameters whose name starts with `prefix` `scale` times the scheduled learning
    /// rate (weight decay scales with it, as it is decoupled: lr * wd).
    pub fn scale_lr(&mut self, prefix: &str, scale: f64) {
        for (i, (name, _)) in self.params.iter().enumerate() {
            if name.starts_with(prefix) {
                self.lr_scales[i] = scale;
            }
        }
    }

    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// True when every gradient is finite (a half-precision overflow makes some infinite).
    pub fn grads_finite(&self) -> bool {
        self.params.iter().all(|(_, p)| {
            let g = p.grad();
            !g.defined() || g.isfinite().all().int64_value(&[]) == 1
        })
    }

    pub fn scale_grads(&mut self, factor: f64) {
        let _guard = tch::no_grad_guard();
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.g_mul_scalar_(factor);
            }
        }
    }

    pub fn apply(&mut self, lr: f64) {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.step as i32);
        let c2 = 1.0 - b2.powi(self.step as i32);
        for (i, (_, p)) in self.params.iter().enumerate() {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let mut p = p.shallow_clone();
            let lr = lr * self.lr_scales[i];
            let _ = self.m[i].g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
            let _ = self.v[i].g_mul_scalar_(b2).g_add_(&(&g * &g * (1.0 - b2)));
            let update = (&self.m[i] / c1) / ((&self.v[i] / c2).sqrt() + self.eps);
            let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
            let _ = p.g_add_(&(update * -lr));
        }
    }

    /// Parameters and moments by name, for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (name, p)) in self.params.iter().enumerate() {
            out.push((format!("param/{name}"), p.detach().to_kind(Kind::Float)));
            out.push((format!("adam_m/{name}"), self.m[i].shallow_clone()));
            out.push((format!("adam_v/{name}"), self.v[i].shallow_clone()));
        }
        out.push(("adam_step".into(), Tensor::from_slice(&[self.step])));
        out
    }

    /// Restores `state()`; every parameter must be present with its shape.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<(), String> {
        let _guard = tch::no_grad_guard();
        for (i, (name, _)) in self.params.iter().enumerate() {
            for (key, dst) in [
                (format!("param/{name}"), &self.params[i].1),
                (format!("adam_m/{name}"), &self.m[i]),
                (format!("adam_v/{name}"), &self.v[i]),
            ] {
                restore(state, &key, dst)?;
            }
        }
        self.step = state.get("adam_step").ok_or("`adam_step` missing")?.int64_value(&[0]);
        Ok(())
    }
}

/// Copies `state[key]` into `dst` (same shape; converted to its kind and device).
fn restore(state: &HashMap<String, Tensor>, key: &str, dst: &Tensor) -> Result<(), String> {
    let src = state.get(key).ok_or_else(|| format!("`{key}` missing"))?;
    if src.size() != dst.size() {
        return Err(format!("`{key}` has shape {:?}, expected {:?}", src.size(), dst.size()));
    }
    let _ = dst.shallow_clone().copy_(&src.to_kind(dst.kind()).to_device(dst.device()));
    Ok(())
}

/// An exponential moving average of the parameters (Polyak averaging): the exported weights, when
/// enabled. Single batches of one scan pull the decoder back and forth (validation Dice swung by 4
/// points between epochs of the recorded run); the average of the last ~1/(1-decay) steps is
/// steadier. Updated after every optimiser step; checkpointed, so a resumed run continues it.
pub struct WeightAverage {
    decay: f64,
    shadow: Vec<(String, Tensor)>,
}

impl WeightAverage {
    /// Starts at the current parameters.
    pub fn new(params: &[(String, Tensor)], decay: f64) -> Self {
        let shadow = params.iter().map(|(n, p)| (n.clone(), p.detach().copy())).collect();
        Self { decay, shadow }
    }

    /// shadow <- decay * shadow + (1 - decay) * param. Early on the decay is lowered
    /// ((1 + step) / (10 + step)) so that the average is not dominated by the base weights.
    pub fn update(&mut self, params: &[(String, Tensor)], step: i64) {
        let _guard = tch::no_grad_guard();
        let d = self.decay.min((1.0 + step as f64) / (10.0 + step as f64));
        for ((_, s), (_, p)) in self.shadow.iter_mut().zip(params) {
            let _ = s.g_mul_scalar_(d).g_add_(&(p.detach() * (1.0 - d)));
        }
    }

    /// The averaged parameters, by the parameters' names.
    pub fn params(&self) -> &[(String, Tensor)] {
        &self.shadow
    }

    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.shadow.iter().map(|(n, t)| (format!("ema/{n}"), t.shallow_clone())).collect()
    }

    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<(), String> {
        let _guard = tch::no_grad_guard();
        for (name, dst) in &self.shadow {
            restore(state, &format!("ema/{name}"), dst)
                .map_err(|e| format!("{e} (a checkpoint of a run without --ema-decay?)"))?;
        }
        Ok(())
    }

    /// Runs `f` with the averaged values in the parameters' place, then puts the trained values back.
    pub fn with_averaged<T>(&self, params: &[(String, Tensor)], f: impl FnOnce() -> T) -> T {
        let swap = |from: &[(String, Tensor)]| {
            let _guard = tch::no_grad_guard();
            for ((_, p), (_, src)) in params.iter().zip(from) {
                let mut p = p.shallow_clone();
                p.copy_(src);
            }
        };
        let trained: Vec<(String, Tensor)> = params.iter().map(|(n, p)| (n.clone(), p.detach().copy())).collect();
        swap(&self.shadow);
        let out = f();
        swap(&trained);
        out
    }
}

/// Linear warm-up to `peak`, then cosine decay to `floor` x peak at `total` steps.
pub fn learning_rate(step: usize, total: usize, warmup: usize, peak: f64, floor: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let t = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
    peak * (floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos()))
}

/// Dynamic loss scale for half precision: halves on overflow (the step is skipped), doubles after
/// `growth_interval` clean steps.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct LossScale {
    pub scale: f64,
    pub clean_steps: u32,
    pub growth_interval: u32,
}

impl LossScale {
    pub fn new(enabled: bool) -> Self {
        Self { scale: if enabled { 65536.0 } else { 1.0 }, clean_steps: 0, growth_interval: 1000 }
    }

    /// After a backward pass: true when the optimiser may step (gradients are unscaled here).
    pub fn unscale_and_check(&mut self, opt: &mut AdamW, enabled: bool) -> bool {
        if !enabled {
            return true;
        }
        if !opt.grads_finite() {
            self.scale /= 2.0;
            self.clean_steps = 0;
            return false;
        }
        opt.scale_grads(1.0 / self.scale);
        self.clean_steps += 1;
        if self.clean_steps >= self.growth_interval {
            self.scale *= 2.0;
            self.clean_steps = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        assert!((learning_rate(0, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!((learning_rate(9, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((learning_rate(10, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((learning_rate(100, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!(learning_rate(55, 100, 10, 1.0, 0.1) < 0.6);
    }

    #[test]
    fn adamw_minimises_a_quadratic_and_its_state_round_trips() {
        let x = Tensor::from_slice(&[3.0f32, -2.0]).set_requires_grad(true);
        let mut opt = AdamW::new(vec![("x".into(), x.shallow_clone())], 0.0);
        for _ in 0..300 {
            opt.zero_grad();
            (&x * &x).sum(Kind::Float).backward();
            opt.apply(0.05);
        }
        assert!(x.abs().max().double_value(&[]) < 0.05, "{x}");
        let state: HashMap<String, Tensor> = opt.state().into_iter().map(|(n, t)| (n, t.copy())).collect();
        let y = Tensor::zeros([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut other = AdamW::new(vec![("x".into(), y.shallow_clone())], 0.0);
        other.load_state(&state).unwrap();
        assert_eq!(other.step, 300);
        assert!((&y - &x).abs().max().double_value(&[]) == 0.0);
        let bad: HashMap<String, Tensor> = HashMap::new();
        assert!(other.load_state(&bad).unwrap_err().contains("param/x"));
    }

    #[test]
    fn a_scaled_group_moves_by_its_share_of_the_rate() {
        // Adam's first step moves every parameter by lr (times its sign), whatever the gradient's
        // size: the encoder's parameter moves a tenth as far as the decoder's.
        let enc = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let dec = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let mut opt = AdamW::new(
            vec![("image_encoder.w".into(), enc.shallow_clone()), ("mask_decoder.w".into(), dec.shallow_clone())],
            0.0,
        );
        opt.scale_lr("image_encoder.", 0.1);
        (&enc * 5.0 + &dec * 5.0).sum(Kind::Float).backward();
        opt.apply(0.01);
        assert!((enc.double_value(&[0]) - 0.999).abs() < 1e-6, "{enc}");
        assert!((dec.double_value(&[0]) - 0.99).abs() < 1e-6, "{dec}");
    }

    #[test]
    fn loss_scale_skips_overflowing_steps() {
        let x = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let mut opt = AdamW::new(vec![("x".into(), x.shallow_clone())], 0.0);
        (&x * f64::INFINITY).sum(Kind::Float).backward();
        let mut s = LossScale::new(true);
        assert!(!s.unscale_and_check(&mut opt, true));
        assert_eq!(s.scale, 32768.0);
        opt.zero_grad();
        (&x * 2.0 * s.scale).sum(Kind::Float).backward();
        assert!(s.unscale_and_check(&mut opt, true));
        assert!((x.grad().double_value(&[0]) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn weight_average_follows_the_parameters_and_swaps_back() {
        let x = Tensor::from_slice(&[0.0f32]).set_requires_grad(true);
        let params = vec![("x".to_string(), x.shallow_clone())];
        let mut ema = WeightAverage::new(&params, 0.9);
        // 50 steps at 0: the average stays 0. Then the parameter jumps to 1 and stays: each update
        // moves the average by (1 - decay) of the gap, the decay lowered early on (51/60 < 0.9).
        for step in 0..50 {
            ema.update(&params, step);
        }
        assert_eq!(ema.params()[0].1.double_value(&[0]), 0.0);
        {
            let _g = tch::no_grad_guard();
            let _ = x.shallow_clone().fill_(1.0);
        }
        ema.update(&params, 50);
        let first = ema.params()[0].1.double_value(&[0]);
        assert!((first - (1.0 - 51.0 / 60.0)).abs() < 1e-6, "{first}");
        let mut last = first;
        for step in 51..100 {
            ema.update(&params, step);
            let v = ema.params()[0].1.double_value(&[0]);
            let gap = 1.0 - last;
            assert!((1.0 - v) <= gap * 0.9 + 1e-6 && v < 1.0, "step {step}: {v}");
            last = v;
        }
        // Inside with_averaged the parameter holds the average; afterwards its trained value.
        let seen = ema.with_averaged(&params, || x.double_value(&[0]));
        assert_eq!(seen, last);
        assert_eq!(x.double_value(&[0]), 1.0);
        // Its state round-trips; a state without it is refused by name.
        let state: HashMap<String, Tensor> = ema.state().into_iter().map(|(n, t)| (n, t.copy())).collect();
        let mut other = WeightAverage::new(&params, 0.9);
        other.load_state(&state).unwrap();
        assert_eq!(other.params()[0].1.double_value(&[0]), last);
        assert!(other.load_state(&HashMap::new()).unwrap_err().contains("ema/x"));
    }
}
