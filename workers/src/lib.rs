//! The RadSAM queue worker as a library: one model per process (GPU when present), jobs from
//! RabbitMQ, masks to S3, results to PostgreSQL, /healthz and /metrics for operators. Run more
//! processes to scale (one GPU each): the queue spreads the jobs.
//!
//! - `worker`: what a worker holds, its start-up, retries, events and the model swap;
//! - `consume`: the consume loop (reconnects, shutdown, the grace period);
//! - `pipeline`: one delivery: parse -> claim -> fetch -> segment -> upload -> commit;
//! - `settle`: how a delivery ends (ack, requeue, fail and dead-letter), decided by plain functions;
//! - `event`: the result event the exchange carries and PostgreSQL keeps;
//! - `models`: loading the model onto its thread; `config`, `telemetry`: flags, metrics, health, logs;
//! - `cache_tier`: the embedding cache's second tier in the S3 store, shared by all workers.

mod cache_tier;
pub mod config;
mod consume;
pub mod event;
pub mod models;
mod pipeline;
pub mod settle;
pub mod telemetry;
mod worker;

pub use consume::{on_signals, Stopped, EXIT_MODEL_STOPPED};
pub use worker::{run, Worker};
