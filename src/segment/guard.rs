//! Propagation guards (issue #17): what the decoder offers beyond the primary mask, its predicted
//! IoU and its three secondary masks, used to catch a carried slice that leaks or collapses.
//!
//! On each carried slice (mask or box carry; never on the user's own slices, never in the reference
//! pipeline, which must stay the reference):
//! - **area jump** (a leak into a neighbour): the chosen mask covers more than `max_growth` times
//!   the previous slice's area plus `slack_mm2`. Another of the four masks within that limit takes
//!   its place (the one with the best predicted IoU); when none is, the propagation stops there in
//!   that direction, as at an empty slice: a leak carried on would grow slice after slice.
//! - **IoU collapse** (the object being lost): the chosen mask's predicted IoU is under `low_iou`.
//!   A mask within the area limit whose predicted IoU is at least `iou_margin` higher takes its
//!   place; otherwise the slice is kept (the object's boundaries are known, so a low score alone
//!   does not end it).
//!
//! Why these numbers (fixed, never tuned per organ): a cross-section rarely doubles between
//! neighbouring slices of a few mm, except near an object's tip where it is small, hence the
//! additive 1 cm²; a predicted IoU under 0.5 means the decoder itself expects to be more wrong than
//! right. Each firing is reported (`GuardEvent`, in result.json as `guards`).

/// The guards' thresholds (module docs).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GuardSettings {
    pub max_growth: f64,
    pub slack_mm2: f64,
    pub low_iou: f32,
    pub iou_margin: f32,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self { max_growth: 2.0, slack_mm2: 100.0, low_iou: 0.5, iou_margin: 0.1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardReason {
    AreaJump,
    LowIou,
}

/// A guard that fired on one carried slice.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GuardEvent {
    pub slice: usize,
    /// +1 towards higher slice indices, -1 towards lower.
    pub direction: i8,
    pub reason: GuardReason,
    /// The mask (0: primary, 1..=3: secondary) the decoder's choice gave, and the one kept instead;
    /// None: none was acceptable and the propagation stopped on this slice.
    pub rejected_mask: i64,
    pub kept_mask: Option<i64>,
    /// Pixels of the previous slice's mask and of the rejected mask, and the rejected mask's
    /// predicted IoU.
    pub previous_pixels: u64,
    pub rejected_pixels: u64,
    pub rejected_iou: f32,
}

/// What to do with a carried slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Switch(i64),
    Stop,
}

impl GuardSettings {
    /// The largest acceptable area (pixels) after a slice of `previous` pixels.
    pub fn area_limit(&self, previous: u64, pixel_mm2: f64) -> u64 {
        (self.max_growth * previous as f64 + self.slack_mm2 / pixel_mm2.max(1e-9)).floor() as u64
    }

    /// Whether the chosen mask needs a closer look (then every mask's area is wanted).
    pub fn suspicious(&self, limit: u64, chosen_pixels: u64, chosen_iou: f32) -> bool {
        chosen_pixels > limit || chosen_iou < self.low_iou
    }

    /// The verdict on a carried slice from the four masks' areas and predicted IoUs, `chosen` being
    /// the decoder's choice, `limit` the area limit; with the reason when a guard fired.
    pub fn judge(&self, limit: u64, pixels: &[u64], iou: &[f32], chosen: i64) -> (Verdict, Option<GuardReason>) {
        let c = chosen as usize;
        let best_within = |min_iou: f32| {
            (0..pixels.len())
                .filter(|&k| k != c && pixels[k] > 0 && pixels[k] <= limit && iou[k] >= min_iou)
                .max_by(|&a, &b| iou[a].total_cmp(&iou[b]))
                .map(|k| k as i64)
        };
        if pixels[c] > limit {
            return (
                best_within(f32::NEG_INFINITY).map_or(Verdict::Stop, Verdict::Switch),
                Some(GuardReason::AreaJump),
            );
        }
        if iou[c] < self.low_iou {
            if let Some(k) = best_within(iou[c] + self.iou_margin) {
                return (Verdict::Switch(k), Some(GuardReason::LowIou));
            }
        }
        (Verdict::Keep, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leak_switches_to_a_mask_within_the_limit_or_stops() {
        let g = GuardSettings::default();
        // 1 mm² pixels: limit 2 * 1000 + 100.
        let limit = g.area_limit(1000, 1.0);
        assert_eq!(limit, 2100);
        // The primary leaks to 5000 px; masks 2 and 3 are within, 3 with the better IoU.
        assert_eq!(
            g.judge(limit, &[5000, 9000, 1200, 1100], &[0.9, 0.8, 0.7, 0.75], 0),
            (Verdict::Switch(3), Some(GuardReason::AreaJump))
        );
        // Nothing within (an empty mask does not count): stop.
        assert_eq!(
            g.judge(limit, &[5000, 9000, 0, 2200], &[0.9, 0.8, 0.99, 0.75], 0),
            (Verdict::Stop, Some(GuardReason::AreaJump))
        );
        // Growth within the limit, confident: kept.
        assert_eq!(g.judge(limit, &[2000, 9000, 0, 0], &[0.9, 0.8, 0.7, 0.7], 0), (Verdict::Keep, None));
    }

    #[test]
    fn a_collapsed_iou_switches_only_to_a_clearly_better_mask() {
        let g = GuardSettings::default();
        let limit = g.area_limit(1000, 1.0);
        assert!(g.suspicious(limit, 800, 0.3) && !g.suspicious(limit, 800, 0.6) && g.suspicious(limit, 2101, 0.9));
        // Primary at 0.3; mask 1 at 0.35 is not 0.1 better, mask 2 at 0.6 is.
        assert_eq!(
            g.judge(limit, &[800, 900, 700, 0], &[0.3, 0.35, 0.6, 0.95], 0),
            (Verdict::Switch(2), Some(GuardReason::LowIou))
        );
        // None better by the margin: kept, the boundaries say the object goes on.
        assert_eq!(g.judge(limit, &[800, 900, 700, 0], &[0.3, 0.35, 0.39, 0.95], 0), (Verdict::Keep, None));
        // A better-scored mask over the area limit is no way out.
        assert_eq!(g.judge(limit, &[800, 3000, 700, 0], &[0.3, 0.9, 0.2, 0.95], 0), (Verdict::Keep, None));
    }
}
