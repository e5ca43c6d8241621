//! RadSAM: 3D CT segmentation from one 2D prompt with a SAM-family model, mask carried slice to
//! slice. See README.md ("Architecture", "Layout") for the module map.
//!
//! The core (model, volume, prompt, segment, job, benchmark, dataset, evaluate) needs no service;
//! the queue service's clients (db, endpoints, queue, registry, storage) come with the `service`
//! feature (on by default).

pub mod allocator;
pub mod assets;
pub mod benchmark;
pub mod clock;
pub mod dataset;
pub mod error;
pub mod evaluate;
pub mod job;
pub mod mask_stats;
pub mod model;
pub mod multipart;
pub mod overlay;
pub mod prompt;
pub mod rng;
pub mod scratch;
pub mod segment;
pub mod volume;

#[cfg(feature = "service")]
pub mod db;
#[cfg(feature = "service")]
pub mod dicomweb;
#[cfg(feature = "service")]
pub mod endpoints;
#[cfg(feature = "service")]
pub mod queue;
#[cfg(feature = "service")]
pub mod registry;
#[cfg(feature = "service")]
pub mod storage;
