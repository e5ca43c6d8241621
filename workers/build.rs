//! The same libtorch link settings as the main crate (RUNPATH to the wheel's torch/lib, CUDA kept).
#[path = "../build.rs"]
mod shared;

fn main() {
    shared::main();
}
