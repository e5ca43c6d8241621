//! RadSAM's loss (paper section 3.3): Dice + binary cross-entropy on the primary mask plus the best
//! of the three secondary masks (each sample's lowest loss), averaged over the batch; and, as SAM
//! trains it, the IoU head regressed (mean squared error) on each mask's actual IoU.

use tch::{Kind, Reduction, Tensor};

/// Dice + BCE of each mask: logits (B, K, M, M), target (B, 1, M, M) -> (B, K).
pub fn dice_bce(logits: &Tensor, target: &Tensor) -> Tensor {
    let t = target.expand_as(logits);
    let p = logits.sigmoid();
    let inter = (&p * &t).sum_dim_intlist([2, 3].as_slice(), false, Kind::Float);
    let denom = p.sum_dim_intlist([2, 3].as_slice(), false, Kind::Float)
        + t.sum_dim_intlist([2, 3].as_slice(), false, Kind::Float);
    let dice = -((inter * 2.0 + 1.0) / (denom + 1.0)) + 1.0;
    let bce = logits.binary_cross_entropy_with_logits::<Tensor>(&t, None, None, Reduction::None).mean_dim(
        [2, 3].as_slice(),
        false,
        Kind::Float,
    );
    dice + bce
}

/// IoU of the binarised masks with the target: (B, K), no gradient.
pub fn actual_iou(logits: &Tensor, target: &Tensor) -> Tensor {
    let _guard = tch::no_grad_guard();
    let m = logits.gt(0.0).to_kind(Kind::Float);
    let t = target.expand_as(&m);
    let inter = (&m * &t).sum_dim_intlist([2, 3].as_slice(), false, Kind::Float);
    let union = (&m + &t).clamp_max(1.0).sum_dim_intlist([2, 3].as_slice(), false, Kind::Float);
    inter / union.clamp_min(1.0)
}

/// The parts of one step's loss (means over the batch).
pub struct StepLoss {
    pub total: Tensor,
    pub primary: f64,
    pub best_secondary: f64,
    pub iou_mse: f64,
    /// Dice (%) of the primary masks with their targets (for the progress line).
    pub primary_dice: f64,
}

/// logits (B, 4, M, M), iou_pred (B, 4), target (B, 1, M, M).
pub fn radsam_loss(logits: &Tensor, iou_pred: &Tensor, target: &Tensor) -> StepLoss {
    let logits = logits.to_kind(Kind::Float);
    let per_mask = dice_bce(&logits, target);
    let primary = per_mask.select(1, 0);
    let best_secondary = per_mask.narrow(1, 1, 3).min_dim(1, false).0;
    let iou = actual_iou(&logits, target);
    let iou_mse = iou_pred.to_kind(Kind::Float).mse_loss(&iou, Reduction::Mean);
    let total = primary.mean(Kind::Float) + best_secondary.mean(Kind::Float) + &iou_mse;
    let dice = {
        let _guard = tch::no_grad_guard();
        let m = logits.select(1, 0).gt(0.0).to_kind(Kind::Float);
        let t = target.select(1, 0);
        let inter = (&m * &t).sum_dim_intlist([1, 2].as_slice(), false, Kind::Float);
        let d = inter * 2.0
            / (m.sum_dim_intlist([1, 2].as_slice(), false, Kind::Float)
                + t.sum_dim_intlist([1, 2].as_slice(), false, Kind::Float))
            .clamp_min(1.0);
        d.mean(Kind::Float).double_value(&[]) * 100.0
    };
    StepLoss {
        primary: primary.mean(Kind::Float).double_value(&[]),
        best_secondary: best_secondary.mean(Kind::Float).double_value(&[]),
        iou_mse: iou_mse.double_value(&[]),
        primary_dice: dice,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Tensor {
        let t = Tensor::zeros([1, 1, 8, 8], (Kind::Float, tch::Device::Cpu));
        let _ = t.narrow(2, 2, 4).narrow(3, 2, 4).fill_(1.0);
        t
    }

    #[test]
    fn a_confident_exact_mask_costs_almost_nothing() {
        let t = target();
        let logits = (&t * 2.0 - 1.0) * 30.0;
        let l = dice_bce(&logits, &t);
        assert!(l.double_value(&[0, 0]) < 1e-3, "{l}");
        let wrong = -logits;
        assert!(dice_bce(&wrong, &t).double_value(&[0, 0]) > 10.0);
    }

    #[test]
    fn secondary_term_takes_the_best_of_three() {
        let t = target();
        let good = (&t * 2.0 - 1.0) * 30.0;
        let bad = -&good;
        // primary bad; secondaries bad, good, bad: the secondary term is the good one's.
        let logits = Tensor::cat(&[&bad, &bad, &good, &bad], 1);
        let iou = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 0.0]).view([1, 4]);
        let l = radsam_loss(&logits, &iou, &t);
        assert!(l.best_secondary < 1e-3 && l.primary > 10.0, "{} {}", l.best_secondary, l.primary);
        assert!(l.iou_mse < 1e-9, "predicted IoU equals actual");
        assert_eq!(l.primary_dice, 0.0);
    }

    #[test]
    fn gradients_reach_the_logits() {
        let t = target();
        let logits = Tensor::zeros([1, 4, 8, 8], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let iou = Tensor::zeros([1, 4], (Kind::Float, tch::Device::Cpu));
        radsam_loss(&logits, &iou, &t).total.backward();
        let g = logits.grad();
        // Inside the target the loss wants larger logits (negative gradient), outside smaller.
        assert!(g.double_value(&[0, 0, 3, 3]) < 0.0 && g.double_value(&[0, 0, 0, 0]) > 0.0);
    }
}
