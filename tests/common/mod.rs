//! Helpers shared by the integration tests: fixtures from the cache, tensor comparison.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use tch::Tensor;

/// Reads a parity fixture written by scripts/parity_reference.py; panics with the command that
/// makes it when it is missing, so a test never passes for want of its reference.
pub fn fixture(name: &str) -> HashMap<String, Tensor> {
    let path = radsam::assets::parity_dir().join(format!("{name}.safetensors"));
    assert!(path.exists(), "missing parity fixture {}: run `make parity-fixtures` (or `make test`)", path.display());
    Tensor::read_safetensors(&path).unwrap().into_iter().collect()
}

pub fn weights(model: &str) -> PathBuf {
    let path = radsam::assets::weights_path(model);
    assert!(path.exists(), "missing weights {}: run `make setup`", path.display());
    path
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    let d = (a.to_kind(tch::Kind::Double) - b.to_kind(tch::Kind::Double)).abs().max().double_value(&[]);
    // A NaN anywhere must never read as "equal".
    if d.is_nan() {
        f64::INFINITY
    } else {
        d
    }
}

pub fn get<'a>(f: &'a HashMap<String, Tensor>, key: &str) -> &'a Tensor {
    f.get(key).unwrap_or_else(|| panic!("fixture has no tensor `{key}`"))
}

/// The project's Python (the venv made by `make setup`), for independent-reader checks.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PYTHON") {
        return PathBuf::from(p);
    }
    radsam::assets::cache_dir().join("venv").join("bin").join("python")
}

/// Runs a script of scripts/ with the project's Python; panics with its output unless it succeeds.
pub fn run_python_check(script: &str, args: &[&std::path::Path]) -> String {
    let out = std::process::Command::new(python())
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(script))
        .args(args)
        .output()
        .expect("run python");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{script} failed:\n{text}");
    text
}

/// A fresh temporary folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("radsam-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Files written by scripts/volume_reference.py.
pub fn reference(name: &str) -> PathBuf {
    let path = radsam::assets::cache_dir().join("reference").join(name);
    assert!(path.exists(), "missing reference {}: run `make test` (scripts/volume_reference.py)", path.display());
    path
}
