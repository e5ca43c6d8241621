//! RadSAM: 3D CT segmentation from one 2D prompt with a SAM-family model, mask carried slice to
//! slice. See README.md for the product and the module map.

pub mod allocator;
pub mod assets;
pub mod benchmark;
pub mod clock;
pub mod connection;
pub mod dataset;
pub mod db;
pub mod error;
pub mod evaluate;
pub mod job;
pub mod metrics;
pub mod model;
pub mod overlay;
pub mod prompt;
pub mod queue;
pub mod registry;
pub mod rng;
pub mod scratch;
pub mod segment;
pub mod storage;
pub mod volume;
