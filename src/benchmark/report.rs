//! The benchmark report, computed from the CSV rows alone: Markdown tables shaped like the paper's
//! Table 2 (Dice by prompt, with and without edits), Table 3 (known vs unknown classes), Table 5
//! (mask vs box carry), Table 6 (oracle mask), Dice against clicks, per-class Dice, Dice by kind of
//! object, and speed and memory; plus the PNG plots (Dice against clicks, per-class bars).
//!
//! Every figure is a mean over objects (one object = one class in one volume) with the half-width
//! of its 95% Student-t interval. A model's "carry" in Tables 2, 3 and the plots is the one with its
//! better volume-level box Dice without clicks (mask carry for RadSAM, box carry for models never
//! trained on mask prompts), as the paper runs each model in its own mode.

use super::kind::ObjectKind;
use super::plot::{bar_chart, line_chart, Panel, Series, PALETTE};
use super::stats::{mean_ci, MeanCi};
use super::{CaseRow, DriftRow, Level, PromptKind, SpeedRow};
use crate::segment::Carry;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;

/// Click counts shown as table columns (those up to the run's maximum).
const CLICK_COLUMNS: [usize; 8] = [0, 1, 2, 3, 5, 10, 15, 20];

/// One protocol configuration.
#[derive(Clone, Copy)]
struct Config {
    level: Level,
    prompt: PromptKind,
    carry: Carry,
    oracle: bool,
    clicks: usize,
}

pub struct Report<'a> {
    rows: &'a [CaseRow],
    speed: &'a [SpeedRow],
    /// Slice-by-slice Dice along the volume-level propagations (drift curves).
    drift: &'a [DriftRow],
    /// Models in order of first appearance.
    pub models: Vec<String>,
    pub max_clicks: usize,
}

/// Distance bands (slices from the prompted slice) of the drift table.
const DRIFT_BANDS: [(u64, u64); 5] = [(0, 0), (1, 2), (3, 5), (6, 10), (11, u64::MAX)];

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Volume => "volume-level",
        Level::Slice => "slice-level",
        Level::Cvpr25 => "CVPR 2025",
    }
}

fn prompt_name(p: PromptKind) -> &'static str {
    match p {
        PromptKind::Box => "box",
        PromptKind::Point => "point",
    }
}

fn carry_name(c: Carry) -> &'static str {
    match c {
        Carry::Mask => "mask",
        Carry::Box => "box",
        Carry::ReferenceBox => "reference box",
    }
}

/// The area under a curve sampled at 0, 1, .., n (trapezoids), divided by n: its mean height.
fn area_under(values: &[f64]) -> f64 {
    let n = values.len() - 1;
    if n == 0 {
        return values[0];
    }
    values.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f64>() / n as f64
}

/// The mean alone, one decimal (per-class and per-kind cells, where intervals over 1-11 objects
/// would crowd the table).
fn mean_only(m: &MeanCi) -> String {
    if m.n == 0 {
        "–".into()
    } else {
        format!("{:.1}", m.mean)
    }
}

fn fmt(m: &MeanCi) -> String {
    match (m.n, m.half_width.is_nan()) {
        (0, _) => "–".into(),
        (_, true) => format!("{:.2}", m.mean),
        _ => format!("{:.2} ± {:.2}", m.mean, m.half_width),
    }
}

impl<'a> Report<'a> {
    pub fn new(rows: &'a [CaseRow], speed: &'a [SpeedRow]) -> Self {
        let mut models: Vec<String> = Vec::new();
        for r in rows {
            if !models.contains(&r.model) {
                models.push(r.model.clone());
            }
        }
        let max_clicks = rows.iter().map(|r| r.clicks).max().unwrap_or(0);
        Self { rows, speed, drift: &[], models, max_clicks }
    }

    /// The report with drift curves (rows of `radsam bench`'s units).
    pub fn with_drift(mut self, drift: &'a [DriftRow]) -> Self {
        self.drift = drift;
        self
    }

    /// Mean slice Dice (%) of `model` with `carry` over the drift rows whose distance from the
    /// prompted slice is in `band` (both directions, every object).
    fn drift_mean(&self, model: &str, carry: Carry, band: (u64, u64)) -> Option<f64> {
        let v: Vec<f64> = self
            .drift
            .iter()
            .filter(|d| d.model == model && d.carry == carry && (band.0..=band.1).contains(&d.offset.unsigned_abs()))
            .map(|d| 100.0 * d.dice)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    fn drift_table(&self, md: &mut String) {
        if self.drift.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Drift along the propagation\n");
        let _ = writeln!(md, "Volume-level box prompt without clicks: mean Dice of a slice by its distance from the prompted slice (both directions, every object); plot: drift.png, rows: drift.csv. A carry that drifts loses Dice with distance; one that leaks or vanishes falls fast.\n");
        let bands: Vec<String> = DRIFT_BANDS
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    format!("{a}")
                } else if b == u64::MAX {
                    format!(">= {a}")
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        let _ = writeln!(md, "| model | carry | {} |\n|---|---|{}", bands.join(" | "), "---|".repeat(bands.len()));
        for m in &self.models {
            for carry in [Carry::Mask, Carry::Box, Carry::ReferenceBox] {
                let cells: Vec<String> = DRIFT_BANDS
                    .iter()
                    .map(|&b| self.drift_mean(m, carry, b).map_or("–".into(), |v| format!("{v:.1}")))
                    .collect();
                if cells.iter().any(|c| c != "–") {
                    let _ = writeln!(md, "| {m} | {} | {} |", carry_name(carry), cells.join(" | "));
                }
            }
        }
        md.push('\n');
    }

    /// Dice (%) of the objects of `model` in configuration `c`, optionally of one class type or class.
    fn values(&self, model: &str, c: Config, filter: &dyn Fn(&CaseRow) -> bool) -> Vec<f64> {
        self.rows
            .iter()
            .filter(|r| {
                r.model == model
                    && r.level == c.level
                    && r.prompt == c.prompt
                    && r.carry == c.carry
                    && r.oracle == c.oracle
                    && r.clicks == c.clicks
                    && filter(r)
            })
            .map(|r| 100.0 * r.dice)
            .collect()
    }

    fn stat(&self, model: &str, c: Config) -> MeanCi {
        mean_ci(&self.values(model, c, &|_| true))
    }

    /// The model's carry: the better of the two in volume-level box prompting without clicks.
    pub fn carry_of(&self, model: &str) -> Carry {
        let m = |carry| {
            self.stat(model, Config { level: Level::Volume, prompt: PromptKind::Box, carry, oracle: false, clicks: 0 })
                .mean
        };
        if m(Carry::Box) > m(Carry::Mask) {
            Carry::Box
        } else {
            Carry::Mask
        }
    }

    fn objects(&self) -> usize {
        self.rows.iter().map(|r| (&r.dataset, &r.case, r.class_id)).collect::<BTreeSet<_>>().len()
    }

    /// The whole Markdown report; `header` goes first (title, command, machine, settings).
    pub fn markdown(&self, header: &str) -> String {
        let mut md = String::from(header);
        let cases = self.rows.iter().map(|r| (&r.dataset, &r.case)).collect::<BTreeSet<_>>().len();
        let _ = writeln!(md, "\n{} objects (class x volume) in {} volumes; models: {}. Dice in %, mean ± half-width of the 95% confidence interval over objects.\n", self.objects(), cases, self.models.join(", "));
        self.table2(&mut md);
        self.table3(&mut md);
        self.table5(&mut md);
        self.table6(&mut md);
        self.clicks_table(&mut md);
        self.cvpr25_table(&mut md);
        self.drift_table(&mut md);
        self.per_class(&mut md);
        self.by_kind(&mut md);
        self.speed_table(&mut md);
        md
    }

    fn table2(&self, md: &mut String) {
        let _ = writeln!(md, "## Dice by prompt (paper Table 2)\n");
        let _ = writeln!(md, "Volume-level: one prompt on the object's largest slice plus its top and bottom slices (3 prompts), carried with the model's carry; slice-level: one prompt on each of the object's n slices. Edits: simulated correction clicks in 3D. Bold: best without edits; underlined: best with edits.\n");
        let _ = writeln!(md, "| model | carry | volume-level prompts | edits | box | point | slice-level prompts | edits | box | point |\n|---|---|---|---|---|---|---|---|---|---|");
        let edits: Vec<usize> = if self.max_clicks > 0 { vec![0, self.max_clicks] } else { vec![0] };
        // cells[e][model][column]
        let columns = [
            (Level::Volume, PromptKind::Box),
            (Level::Volume, PromptKind::Point),
            (Level::Slice, PromptKind::Box),
            (Level::Slice, PromptKind::Point),
        ];
        let cells: Vec<Vec<Vec<MeanCi>>> = edits
            .iter()
            .map(|&e| {
                self.models
                    .iter()
                    .map(|m| {
                        columns
                            .iter()
                            .map(|&(level, prompt)| {
                                self.stat(
                                    m,
                                    Config { level, prompt, carry: self.carry_of(m), oracle: false, clicks: e },
                                )
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let best = |e: usize, col: usize| {
            cells[e].iter().map(|r| r[col].mean).filter(|v| !v.is_nan()).fold(f64::NAN, f64::max)
        };
        for (mi, m) in self.models.iter().enumerate() {
            for (ei, &e) in edits.iter().enumerate() {
                let show = |col: usize| {
                    let c = &cells[ei][mi][col];
                    let s = fmt(c);
                    match (self.models.len() > 1 && c.mean == best(ei, col), ei) {
                        (true, 0) => format!("**{s}**"),
                        (true, _) => format!("<u>{s}</u>"),
                        _ => s,
                    }
                };
                let (name, carry) = if ei == 0 { (m.as_str(), carry_name(self.carry_of(m))) } else { ("", "") };
                let _ = writeln!(
                    md,
                    "| {name} | {carry} | 3 | {e} | {} | {} | n | {e} | {} | {} |",
                    show(0),
                    show(1),
                    show(2),
                    show(3)
                );
            }
        }
        md.push('\n');
    }

    fn table3(&self, md: &mut String) {
        if self.rows.iter().all(|r| r.known.is_empty()) {
            return;
        }
        let _ = writeln!(md, "## Known vs unknown classes (paper Table 3)\n");
        let _ = writeln!(md, "Known: the classes named by the run's `--known-classes`; unknown: all others. Each model with its carry; edits: {} clicks.\n", self.max_clicks);
        let _ = writeln!(md, "| model | classes | objects | edits | volume-level box | volume-level point | slice-level box | slice-level point |\n|---|---|---|---|---|---|---|---|");
        for m in &self.models {
            for kind in ["known", "unknown"] {
                let objects = self
                    .rows
                    .iter()
                    .filter(|r| &r.model == m && r.known == kind)
                    .map(|r| (&r.dataset, &r.case, r.class_id))
                    .collect::<BTreeSet<_>>()
                    .len();
                let edits: Vec<usize> = if self.max_clicks > 0 { vec![0, self.max_clicks] } else { vec![0] };
                for e in edits {
                    let cell = |level, prompt| {
                        fmt(&mean_ci(&self.values(
                            m,
                            Config { level, prompt, carry: self.carry_of(m), oracle: false, clicks: e },
                            &|r| r.known == kind,
                        )))
                    };
                    let _ = writeln!(
                        md,
                        "| {m} | {kind} | {objects} | {e} | {} | {} | {} | {} |",
                        cell(Level::Volume, PromptKind::Box),
                        cell(Level::Volume, PromptKind::Point),
                        cell(Level::Slice, PromptKind::Box),
                        cell(Level::Slice, PromptKind::Point)
                    );
                }
            }
        }
        md.push('\n');
    }

    fn table5(&self, md: &mut String) {
        let _ = writeln!(md, "## Mask carry vs box carry (paper Table 5)\n");
        let _ = writeln!(md, "Volume-level prompting without clicks: each slice's prompt is the previous slice's mask (mask carry) or the box around it (box carry).\n");
        let reference = self.rows.iter().any(|r| r.carry == Carry::ReferenceBox);
        let _ = writeln!(md, "| model | mask carry, box | mask carry, point | box carry, box | box carry, point |{}\n|---|---|---|---|---|{}", if reference { " reference pipeline, box |" } else { "" }, if reference { "---|" } else { "" });
        for m in &self.models {
            let cell = |carry, prompt| {
                fmt(&self.stat(m, Config { level: Level::Volume, prompt, carry, oracle: false, clicks: 0 }))
            };
            let extra =
                if reference { format!(" {} |", cell(Carry::ReferenceBox, PromptKind::Box)) } else { String::new() };
            let _ = writeln!(
                md,
                "| {m} | {} | {} | {} | {} |{extra}",
                cell(Carry::Mask, PromptKind::Box),
                cell(Carry::Mask, PromptKind::Point),
                cell(Carry::Box, PromptKind::Box),
                cell(Carry::Box, PromptKind::Point)
            );
        }
        if reference {
            let _ = writeln!(md, "\nReference pipeline: LiteMedSAM's own 3D inference (MedSAM's CVPR 2024 code) on the same prompt: the next slice's box is the previous mask's box widened by 3 pixels of the 256-pixel grid, and the prompted box again after an empty slice. With `lite_medsam@-160,240` (MedSAM's soft-tissue window) it is the reference baseline of issue #17.");
        }
        md.push('\n');
    }

    fn table6(&self, md: &mut String) {
        if !self.rows.iter().any(|r| r.oracle) {
            return;
        }
        let _ = writeln!(md, "## Oracle mask (paper Table 6)\n");
        let _ = writeln!(md, "Primary mask vs the oracle (on every slice, the secondary mask closest to the truth), without clicks; volume-level with the model's carry.\n");
        let _ =
            writeln!(md, "| model | level | box | point | box, oracle | point, oracle |\n|---|---|---|---|---|---|");
        for m in &self.models {
            for level in [Level::Volume, Level::Slice] {
                // Slice-level without clicks does not depend on the carry; its oracle runs use mask.
                let carry = if level == Level::Volume { self.carry_of(m) } else { Carry::Mask };
                let cell = |prompt, oracle| fmt(&self.stat(m, Config { level, prompt, carry, oracle, clicks: 0 }));
                let _ = writeln!(
                    md,
                    "| {m} | {} | {} | {} | {} | {} |",
                    level_name(level),
                    cell(PromptKind::Box, false),
                    cell(PromptKind::Point, false),
                    cell(PromptKind::Box, true),
                    cell(PromptKind::Point, true)
                );
            }
        }
        md.push('\n');
    }

    fn click_columns(&self) -> Vec<usize> {
        CLICK_COLUMNS
            .iter()
            .copied()
            .filter(|&c| c <= self.max_clicks)
            .chain((!CLICK_COLUMNS.contains(&self.max_clicks)).then_some(self.max_clicks))
            .collect()
    }

    fn clicks_table(&self, md: &mut String) {
        let cols = self.click_columns();
        let _ = writeln!(md, "## Dice against clicks\n");
        let _ = writeln!(md, "Every protocol; slice-level carry: whether a correction also feeds the slice's current mask (mask) or only its own prompt and clicks (box). Plot: clicks.png.\n");
        let head: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(
            md,
            "| model | level | prompt | carry | {} |\n|---|---|---|---|{}",
            head.join(" | "),
            "---|".repeat(cols.len())
        );
        for m in &self.models {
            for level in [Level::Volume, Level::Slice] {
                for prompt in [PromptKind::Box, PromptKind::Point] {
                    for carry in [Carry::Mask, Carry::Box] {
                        let cells: Vec<String> = cols
                            .iter()
                            .map(|&clicks| fmt(&self.stat(m, Config { level, prompt, carry, oracle: false, clicks })))
                            .collect();
                        let _ = writeln!(
                            md,
                            "| {m} | {} | {} | {} | {} |",
                            level_name(level),
                            prompt_name(prompt),
                            carry_name(carry),
                            cells.join(" | ")
                        );
                    }
                }
            }
        }
        md.push_str("\n![Dice against clicks](clicks.png)\n\n");
    }

    /// The CVPR 2025 protocol: Dice before clicks, after the last, and the area under the
    /// Dice-vs-clicks curve (trapezoids over 0..=N clicks, divided by N: a Dice in %), each a mean
    /// over objects.
    fn cvpr25_table(&self, md: &mut String) {
        let n = self.rows.iter().filter(|r| r.level == Level::Cvpr25).map(|r| r.clicks).max().unwrap_or(0);
        if n == 0 {
            return;
        }
        let _ = writeln!(
            md,
            "## CVPR 2025 protocol
"
        );
        let _ = writeln!(md, "The CVPR 2025 interactive 3D segmentation challenge's protocol: a box on the object's middle slice plus its top and bottom slices, then {n} clicks, each at the centre of the largest error component. AUC: the area under the Dice-vs-clicks curve over 0..{n} clicks, divided by {n}.\n");
        let _ = writeln!(md, "| model | carry | 0 clicks | {n} clicks | AUC |\n|---|---|---|---|---|");
        for m in &self.models {
            for carry in [Carry::Mask, Carry::Box] {
                let at = |clicks| {
                    self.stat(m, Config { level: Level::Cvpr25, prompt: PromptKind::Box, carry, oracle: false, clicks })
                };
                let auc = mean_ci(&self.cvpr25_auc(m, carry, n));
                if auc.n > 0 {
                    let _ = writeln!(
                        md,
                        "| {m} | {} | {} | {} | {} |",
                        carry_name(carry),
                        fmt(&at(0)),
                        fmt(&at(n)),
                        fmt(&auc)
                    );
                }
            }
        }
        md.push('\n');
    }

    /// Per object: the normalised area under its CVPR 2025 Dice-vs-clicks curve (%), for objects
    /// with every click count 0..=n.
    fn cvpr25_auc(&self, model: &str, carry: Carry, n: usize) -> Vec<f64> {
        let mut curves: std::collections::BTreeMap<(&str, &str, u16), Vec<Option<f64>>> = Default::default();
        for r in self
            .rows
            .iter()
            .filter(|r| r.model == model && r.level == Level::Cvpr25 && r.carry == carry && r.clicks <= n)
        {
            curves.entry((r.dataset.as_str(), r.case.as_str(), r.class_id)).or_insert_with(|| vec![None; n + 1])
                [r.clicks] = Some(100.0 * r.dice);
        }
        curves
            .values()
            .filter_map(|c| c.iter().copied().collect::<Option<Vec<f64>>>())
            .map(|d| area_under(&d))
            .collect()
    }

    /// Class names in order, with their object counts.
    fn classes(&self) -> Vec<(String, usize)> {
        let mut by_class: std::collections::BTreeMap<&str, BTreeSet<(&str, &str)>> = Default::default();
        for r in self.rows {
            by_class.entry(&r.class).or_default().insert((&r.dataset, &r.case));
        }
        by_class.into_iter().map(|(c, s)| (c.to_string(), s.len())).collect()
    }

    fn per_class(&self, md: &mut String) {
        let _ = writeln!(md, "## Per class\n");
        let _ = writeln!(
            md,
            "Box prompt, no clicks, each model with its carry; mean over the class's objects. Plot: classes.png.\n"
        );
        let mut head = String::from("| class | objects |");
        let mut sep = String::from("|---|---|");
        for m in &self.models {
            let _ = write!(head, " {m} volume-level | {m} slice-level |");
            sep.push_str("---|---|");
        }
        let _ = writeln!(md, "{head}\n{sep}");
        for (class, n) in self.classes() {
            let mut line = format!("| {class} | {n} |");
            for m in &self.models {
                for level in [Level::Volume, Level::Slice] {
                    let v = mean_ci(&self.values(
                        m,
                        Config { level, prompt: PromptKind::Box, carry: self.carry_of(m), oracle: false, clicks: 0 },
                        &|r| r.class == class,
                    ));
                    let _ = write!(line, " {} |", mean_only(&v));
                }
            }
            let _ = writeln!(md, "{line}");
        }
        md.push_str("\n![Per-class Dice](classes.png)\n\n");
    }

    /// Each kind of object in every volume-level pipeline, so that a fine-tuned model can be read
    /// against its base pipeline by pipeline.
    fn by_kind(&self, md: &mut String) {
        let mut objects: std::collections::BTreeMap<ObjectKind, BTreeSet<(&str, &str, u16)>> = Default::default();
        for r in self.rows {
            objects.entry(ObjectKind::of(&r.class)).or_default().insert((&r.dataset, &r.case, r.class_id));
        }
        let reference = self.rows.iter().any(|r| r.carry == Carry::ReferenceBox);
        let _ = writeln!(
            md,
            "## By kind of object
"
        );
        let _ = writeln!(md, "Volume-level box prompt, no clicks: mean Dice over the kind's objects in each pipeline. Read a fine-tuned model against its base (LiteMedSAM on the same input window) pipeline by pipeline: a kind where it falls below the base is a kind the fine-tune made it forget.
");
        let _ = writeln!(
            md,
            "| kind | objects | model | mask carry | box carry |{}\n|---|---|---|---|---|{}",
            if reference { " reference pipeline |" } else { "" },
            if reference { "---|" } else { "" }
        );
        let mut carries = vec![Carry::Mask, Carry::Box];
        if reference {
            carries.push(Carry::ReferenceBox);
        }
        for (kind, set) in &objects {
            for m in &self.models {
                let mut line = format!("| {kind} | {} | {m} |", set.len());
                for &carry in &carries {
                    let v = mean_ci(&self.values(
                        m,
                        Config { level: Level::Volume, prompt: PromptKind::Box, carry, oracle: false, clicks: 0 },
                        &|r| ObjectKind::of(&r.class) == *kind,
                    ));
                    let _ = write!(line, " {} |", mean_only(&v));
                }
                let _ = writeln!(md, "{line}");
            }
        }
        md.push('\n');
    }

    fn speed_table(&self, md: &mut String) {
        let _ = writeln!(md, "## Speed and memory\n");
        let _ = writeln!(md, "Per model over its volumes: encoding (each volume's slices once, batched), decoding (every protocol run above), the whole protocol per volume, and peak memory.\n");
        let _ = writeln!(md, "| model | device | volumes | slices encoded | encode s / volume | encode slices / s | decode slices / s | protocol s / volume | peak RSS MiB | GPU memory MiB |\n|---|---|---|---|---|---|---|---|---|---|");
        for m in &self.models {
            let rows: Vec<&SpeedRow> = self.speed.iter().filter(|s| &s.model == m).collect();
            if rows.is_empty() {
                continue;
            }
            let n = rows.len() as f64;
            let sum = |f: &dyn Fn(&SpeedRow) -> f64| rows.iter().map(|r| f(r)).sum::<f64>();
            let devices: BTreeSet<&str> = rows.iter().map(|r| r.device.as_str()).collect();
            let gpu = rows
                .iter()
                .filter_map(|r| r.gpu_memory_mib)
                .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
            let _ = writeln!(
                md,
                "| {m} | {} | {} | {} | {:.2} | {:.1} | {:.1} | {:.1} | {:.0} | {} |",
                devices.into_iter().collect::<Vec<_>>().join(", "),
                rows.len(),
                sum(&|r| r.encoded_slices as f64),
                sum(&|r| r.encode_seconds) / n,
                sum(&|r| r.encoded_slices as f64) / sum(&|r| r.encode_seconds).max(1e-9),
                sum(&|r| r.decoded_slices as f64) / sum(&|r| r.decode_seconds).max(1e-9),
                sum(&|r| r.seconds) / n,
                rows.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
                gpu.map_or("–".to_string(), |g| format!("{g:.0}")),
            );
        }
        md.push('\n');
    }

    /// clicks.png and classes.png in `dir`.
    pub fn plots(&self, dir: &Path) -> Result<(), image::ImageError> {
        let panels: Vec<Panel> = [Level::Volume, Level::Slice]
            .into_iter()
            .map(|level| Panel {
                title: format!("{} (model's carry)", level_name(level)),
                series: self
                    .models
                    .iter()
                    .enumerate()
                    .flat_map(|(mi, m)| {
                        [PromptKind::Box, PromptKind::Point].into_iter().map(move |prompt| (mi, m, prompt))
                    })
                    .map(|(mi, m, prompt)| Series {
                        label: format!("{m}, {}", prompt_name(prompt)),
                        color: PALETTE[mi % PALETTE.len()],
                        dashed: prompt == PromptKind::Point,
                        points: (0..=self.max_clicks)
                            .filter_map(|clicks| {
                                let s = self
                                    .stat(m, Config { level, prompt, carry: self.carry_of(m), oracle: false, clicks });
                                (s.n > 0).then_some((clicks as f64, s.mean))
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        line_chart(
            &dir.join("clicks.png"),
            "Dice against correction clicks (box solid, point dashed)",
            "clicks",
            self.max_clicks as f64,
            &panels,
        )?;

        if !self.drift.is_empty() {
            let far = self.drift.iter().map(|d| d.offset.unsigned_abs()).max().unwrap_or(0);
            let panels: Vec<Panel> = [Carry::Mask, Carry::Box, Carry::ReferenceBox]
                .into_iter()
                .filter(|&c| self.drift.iter().any(|d| d.carry == c))
                .map(|carry| Panel {
                    title: format!("{} carry", carry_name(carry)),
                    series: self
                        .models
                        .iter()
                        .enumerate()
                        .map(|(mi, m)| Series {
                            label: m.clone(),
                            color: PALETTE[mi % PALETTE.len()],
                            dashed: false,
                            points: (0..=far)
                                .filter_map(|k| self.drift_mean(m, carry, (k, k)).map(|v| (k as f64, v)))
                                .collect(),
                        })
                        .collect(),
                })
                .collect();
            line_chart(
                &dir.join("drift.png"),
                "Slice Dice against distance from the prompted slice (volume box, no clicks)",
                "slices from the prompt",
                far as f64,
                &panels,
            )?;
        }

        let classes = self.classes();
        let mut groups = Vec::new();
        for (mi, m) in self.models.iter().enumerate() {
            for (li, level) in [Level::Volume, Level::Slice].into_iter().enumerate() {
                let c = PALETTE[mi % PALETTE.len()];
                // Slice-level bars in a lighter shade of the model's colour.
                let color = if li == 0 { c } else { c.map(|v| (v as u16 + (255 - v as u16) / 2) as u8) };
                groups.push((format!("{m}, {}", level_name(level)), color, m.clone(), level));
            }
        }
        let values: Vec<Vec<Option<f64>>> = classes
            .iter()
            .map(|(class, _)| {
                groups
                    .iter()
                    .map(|(_, _, m, level)| {
                        let v = mean_ci(&self.values(
                            m,
                            Config {
                                level: *level,
                                prompt: PromptKind::Box,
                                carry: self.carry_of(m),
                                oracle: false,
                                clicks: 0,
                            },
                            &|r| &r.class == class,
                        ));
                        (v.n > 0).then_some(v.mean)
                    })
                    .collect()
            })
            .collect();
        let names: Vec<String> = classes.iter().map(|(c, _)| c.clone()).collect();
        let legend: Vec<(String, [u8; 3])> = groups.iter().map(|(l, c, _, _)| (l.clone(), *c)).collect();
        bar_chart(&dir.join("classes.png"), "Dice per class, box prompt, no clicks", &names, &legend, &values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::benchmark::ClickMode;

    fn row(model: &str, class: &str, level: Level, carry: Carry, clicks: usize, dice: f64) -> CaseRow {
        CaseRow {
            model: model.into(),
            dataset: "d".into(),
            case: format!("case-{class}"),
            class_id: 1,
            class: class.into(),
            known: if class == "liver" { "known".into() } else { "unknown".into() },
            level,
            prompt: PromptKind::Box,
            carry,
            oracle: false,
            click_mode: ClickMode::Uniform,
            clicks,
            dice,
            slices: 3,
            voxels: 10,
        }
    }

    #[test]
    fn tables_use_each_models_carry_and_intervals_over_objects() {
        let mut rows = Vec::new();
        for (class, a, b) in [("liver", 0.9, 0.5), ("spleen", 0.7, 0.6)] {
            rows.push(row("radsam", class, Level::Volume, Carry::Mask, 0, a));
            rows.push(row("radsam", class, Level::Volume, Carry::Box, 0, b));
            rows.push(row("lite", class, Level::Volume, Carry::Mask, 0, b - 0.4));
            rows.push(row("lite", class, Level::Volume, Carry::Box, 0, b));
        }
        let report = Report::new(&rows, &[]);
        assert_eq!(report.carry_of("radsam"), Carry::Mask);
        assert_eq!(report.carry_of("lite"), Carry::Box);
        let md = report.markdown("# t\n");
        // radsam, mask carry: (90 + 70) / 2 = 80 ± t(1) * sd/sqrt(2) = 12.706 * 10 = 127.06.
        assert!(md.contains("| radsam | mask | 3 | 0 | **80.00 ± 127.06** |"), "{md}");
        assert!(md.contains("| lite | box | 3 | 0 | 55.00 ± 63.53 |"), "{md}");
        // Known vs unknown: one object each, no interval.
        assert!(md.contains("| radsam | known | 1 | 0 | 90.00 |"), "{md}");
        assert!(md.contains("| radsam | 80.00 ± 127.06 | – | 55.00 ± 63.53 | – |"), "Table 5: {md}");
    }

    #[test]
    fn the_kind_table_averages_each_kind_in_each_pipeline() {
        let mut rows = Vec::new();
        for (class, mask, boxed) in [("liver", 0.9, 0.8), ("spleen", 0.7, 0.6), ("aorta", 0.5, 0.9)] {
            rows.push(row("radsam", class, Level::Volume, Carry::Mask, 0, mask));
            rows.push(row("radsam", class, Level::Volume, Carry::Box, 0, boxed));
        }
        // Clicks and slice-level rows do not count.
        rows.push(row("radsam", "liver", Level::Volume, Carry::Mask, 5, 0.0));
        rows.push(row("radsam", "aorta", Level::Slice, Carry::Mask, 0, 0.0));
        let md = Report::new(&rows, &[]).markdown("# t\n");
        assert!(md.contains("| kind | objects | model | mask carry | box carry |\n"), "no reference column: {md}");
        assert!(md.contains("| organs | 2 | radsam | 80.0 | 70.0 |"), "{md}");
        assert!(md.contains("| vessels | 1 | radsam | 50.0 | 90.0 |"), "{md}");
        assert!(!md.contains("| lesions |"), "{md}");
    }

    #[test]
    fn cvpr25_table_gives_final_dice_and_the_normalised_area_under_the_click_curve() {
        let mut rows = Vec::new();
        // liver: 50, 70, 90 over 0..2 clicks: area (60 + 80) / 2 = 70; spleen: 80, 80, 80: 80.
        for (class, curve) in [("liver", [0.5, 0.7, 0.9]), ("spleen", [0.8, 0.8, 0.8])] {
            rows.push(row("radsam", class, Level::Volume, Carry::Mask, 0, 0.6));
            for (clicks, d) in curve.iter().enumerate() {
                rows.push(row("radsam", class, Level::Cvpr25, Carry::Mask, clicks, *d));
            }
        }
        // An object missing a click count has no area.
        rows.push(row("radsam", "colon", Level::Cvpr25, Carry::Mask, 0, 0.1));
        let md = Report::new(&rows, &[]).markdown("# t\n");
        assert!(md.contains("## CVPR 2025 protocol"), "{md}");
        // 0 clicks: the three objects (50, 80, 10); 2 clicks: liver and spleen; AUC: (70 + 80) / 2.
        let line = md.lines().find(|l| l.starts_with("| radsam | mask | 46.67")).unwrap_or_else(|| panic!("{md}"));
        assert!(line.contains("| 85.00 ± ") && line.contains("| 75.00 ± 63.53 |"), "{line}");
        // The paper's tables ignore the CVPR rows: volume-level box, mask carry, 0 clicks is 60.
        assert!(md.lines().any(|l| l.starts_with("| radsam | mask | 3 | 0 |") && l.contains("60.00")), "{md}");
        assert_eq!(area_under(&[40.0]), 40.0);
    }
}
