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
    if d.is_nan() { f64::INFINITY } else { d }
}

pub fn get<'a>(f: &'a HashMap<String, Tensor>, key: &str) -> &'a Tensor {
    f.get(key).unwrap_or_else(|| panic!("fixture has no tensor `{key}`"))
}
