//! radsam-worker: flags, logs, a runtime, and the worker library's `run` (see lib.rs).

use anyhow::Result;
use clap::Parser;
use radsam_worker::{config::Config, telemetry};

fn main() -> Result<()> {
    radsam::allocator::keep_freed_memory();
    let config = Config::parse();
    telemetry::init_logging(&config.log_format);
    telemetry::log_panics_as_lines();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let stopped = runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        radsam_worker::on_signals(tx);
        radsam_worker::run(config, rx).await
    })?;
    // Without waiting for the runtime: a model thread still busy cannot be interrupted.
    std::process::exit(stopped.exit_code())
}
