//! Link-time settings for libtorch from the PyTorch wheel (LIBTORCH_USE_PYTORCH=1):
//! - a RUNPATH to the wheel's torch/lib, so binaries and tests run without LD_LIBRARY_PATH
//!   (LD_LIBRARY_PATH still wins, which is how a GPU host points at its own libtorch);
//! - keep libtorch_cuda.so linked even though no symbol of it is referenced directly, otherwise
//!   the linker drops it and CUDA is never available (see ../shared/gpu.md).
use std::process::Command;

pub fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    println!("cargo:rerun-if-env-changed=PATH");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = Command::new(python)
        .args(["-c", "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"])
        .output();
    if let Ok(out) = out {
        if out.status.success() {
            let lib = String::from_utf8_lossy(&out.stdout).trim().to_string();
            println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
            if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
                println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
            }
        }
    }
}
