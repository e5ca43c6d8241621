//! The bad-input corpus (tests/bad_corpus: kinds of hostile or broken volumes and DICOM folders,
//! made at test time: small files, sparse files, FIFOs, links), each run through the real CLI (`radsam
//! segment`). Each must end with its stable code, exit non-zero, leave no output folder and no
//! staging folder beside it, never panic or hang, and stay under 2 GB of peak memory (measured
//! with /usr/bin/time). A valid NIfTI and a valid DICOM series from the same generators segment,
//! so each bad kind differs from a good input by its defect alone.

mod bad_corpus;
mod common;

use bad_corpus::{corpus, Nii, Series};
use common::temp_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The CLI.

struct Run {
    ok: bool,
    stderr: String,
    /// Peak resident memory of the CLI process, in kB (/usr/bin/time %M).
    peak_kb: u64,
    seconds: f64,
}

impl Run {
    /// The stable code printed as `[CODE]` in the error line.
    fn code(&self) -> Option<String> {
        let start = self.stderr.find("error: [")? + "error: [".len();
        let len = self.stderr[start..].find(']')?;
        Some(self.stderr[start..start + len].to_string())
    }
}

/// `radsam segment` on `volume` (a one-target job: slice 0, boundaries 0..1, a box inside a 32 x 32
/// slice unless `extra` gives another), under /usr/bin/time for the peak memory, killed (and the
/// test failed) after 180 s.
fn segment(volume: &Path, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let rss = out.with_extension("rss");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"]).arg(&rss).arg(env!("CARGO_BIN_EXE_radsam"));
    cmd.args(["segment", "--device", "cpu", "--threads", "1", "--slice", "0", "--boundaries", "0,1", "--volume"])
        .arg(volume)
        .arg("--out")
        .arg(out)
        .args(extra);
    if !extra.contains(&"--box") {
        cmd.args(["--box", "2,2,20,20"]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t0 = Instant::now();
    let mut child =
        cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("/usr/bin/time and the radsam binary");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() > Duration::from_secs(180) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("radsam segment on {} hung (killed after 180 s)", volume.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = reader.join().unwrap();
    // time's own line ("Command exited with non-zero status") goes to the -o file before %M.
    let peak_kb = std::fs::read_to_string(&rss)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .last()
        .unwrap_or(0);
    Run { ok: status.success(), stderr, peak_kb, seconds: t0.elapsed().as_secs_f64() }
}

/// What a refused run left: its output folder, or a staging folder beside it.
fn leftovers(out: &Path) -> Vec<PathBuf> {
    let name = out.file_name().unwrap().to_str().unwrap();
    let partial = format!(".{name}.partial-");
    let mut left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&partial)))
        .map(|e| e.path())
        .collect();
    if out.exists() {
        left.push(out.to_path_buf());
    }
    left
}
#[test]
fn every_bad_input_gets_its_code_through_the_cli_and_leaves_nothing() {
    let dir = temp_dir("bad-inputs");
    let outs = dir.join("outs");
    std::fs::create_dir_all(&outs).unwrap();
    let cases = corpus(&dir);
    assert!(cases.len() >= 25, "{} kinds", cases.len());
    let mut failures = Vec::new();
    let mut worst = (0u64, "");
    for (i, c) in cases.iter().enumerate() {
        let out = outs.join(format!("out{i}"));
        let run = segment(&c.volume, &out, &c.extra, &c.env);
        let code = run.code();
        println!(
            "{:<55} {:<28} {:>7.1} MB {:>5.1} s  {}",
            c.name,
            code.as_deref().unwrap_or("-"),
            run.peak_kb as f64 / 1024.0,
            run.seconds,
            run.stderr.lines().last().unwrap_or("")
        );
        if run.peak_kb > worst.0 {
            worst = (run.peak_kb, c.name);
        }
        let problem = if run.ok {
            Some("accepted".to_string())
        } else if run.stderr.contains("panicked") {
            Some(format!("panicked: {}", run.stderr))
        } else if code.as_deref() != Some(c.code) {
            Some(format!("code {code:?}, expected {}: {}", c.code, run.stderr.trim()))
        } else if !run.stderr.contains(c.says) {
            Some(format!("message does not say {:?}: {}", c.says, run.stderr.trim()))
        } else if run.peak_kb == 0 || run.peak_kb > 2 << 20 {
            Some(format!("peak memory {} kB (limit 2 GB)", run.peak_kb))
        } else if !leftovers(&out).is_empty() {
            Some(format!("left behind: {:?}", leftovers(&out)))
        } else {
            None
        };
        if let Some(p) = problem {
            failures.push(format!("{}: {p}", c.name));
        }
    }
    println!("{} kinds; worst peak memory {:.1} MB ({})", cases.len(), worst.0 as f64 / 1024.0, worst.1);
    assert!(failures.is_empty(), "{} of {} kinds failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    // Passed: the corpus goes (its FIFOs, links and sparse files are not for other tools to find).
    let _ = std::fs::remove_dir_all(&dir);
}

/// The generators make good inputs too: a NIfTI and a DICOM series that segment. So every bad
/// kind above is refused for its defect, not for a flaw of the generator.
#[test]
fn the_generators_good_inputs_segment() {
    let dir = temp_dir("good-inputs");
    let nii = Nii::int16([32, 32, 4]).write(&dir.join("good.nii.gz"));
    let dcm = Series::ct().write(&dir.join("good_dcm"));
    for volume in [nii, dcm] {
        let out = dir.join(format!("out-{}", volume.file_name().unwrap().to_str().unwrap()));
        let run = segment(&volume, &out, &[], &[]);
        assert!(run.ok, "{}: {}", volume.display(), run.stderr);
        assert!(
            out.join("target.nii.gz").exists() && out.join("result.json").exists(),
            "{:?}",
            std::fs::read_dir(&out).unwrap().collect::<Vec<_>>()
        );
    }
}

/// SliceGeometry never resizes a side to nothing, however thin the slice (issue #18, finding 1:
/// a 2000 x 1 slice resized to 256 rounded to 0 columns and libtorch panicked).
#[test]
fn a_thin_slice_resizes_to_at_least_one_pixel() {
    use radsam::model::preprocess::SliceGeometry;
    for (h, w, target) in [(2000, 1, 256), (1, 2000, 256), (5000, 1, 1024), (1, 1, 256)] {
        let g = SliceGeometry::new(h, w, target);
        assert!(g.scaled_h >= 1 && g.scaled_w >= 1, "{h}x{w} -> {}x{}", g.scaled_h, g.scaled_w);
        assert!(g.scaled_h.max(g.scaled_w) == target, "{g:?}");
    }
}

/// A CLI run killed earlier (SIGKILL) left `.OUT.partial-PID` beside `--out`: the next run removes
/// it when that process is gone, and leaves a live process's staging alone.
#[test]
fn a_killed_runs_staging_folder_is_removed_by_the_next_run() {
    let dir = temp_dir("stale-partials");
    let out = dir.join("out");
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = dir.join(format!(".out.partial-{dead}"));
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("target.nii.gz"), b"half").unwrap();
    let live = dir.join(format!(".out.partial-{}", std::process::id()));
    std::fs::create_dir_all(&live).unwrap();
    // Any run does it, even one refused for its input.
    let run = segment(&dir.join("absent.nii.gz"), &out, &[], &[]);
    assert_eq!(run.code().as_deref(), Some("VOLUME_NOT_FOUND"), "{}", run.stderr);
    assert!(!stale.exists(), "the dead process's staging folder is still there");
    assert!(live.exists(), "a live process's staging folder was removed");
}
