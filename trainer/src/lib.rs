//! The RadSAM training recipe (paper section 3.3) in Rust, on labelled CT read by
//! `radsam::dataset`: augmented slice views with cached embeddings (`augment`, `examples`), training
//! prompts and correction clicks (`prompts`), the loss (`loss`), AdamW with checkpointable state
//! (`optim`), the loop with checkpoints and resume (`recipe`), and validation on whole volumes
//! (`validation`).

pub mod augment;
pub mod examples;
pub mod loss;
pub mod optim;
pub mod prompts;
pub mod recipe;
pub mod validation;
