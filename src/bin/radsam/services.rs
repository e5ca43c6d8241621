//! What the service commands (submit, accept, results, migrate, upload) share: where the broker,
//! the database and the stores are (the worker's variables and defaults), and a tokio runtime.

use anyhow::Result;

#[derive(clap::Args, Clone)]
pub struct ServiceArgs {
    /// RabbitMQ URL.
    #[arg(long, env = "RADSAM_AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Prefix of the exchanges and queues.
    #[arg(long, env = "RADSAM_QUEUE_PREFIX", default_value = "radsam")]
    pub queue_prefix: String,
    /// The jobs queue's delivery limit (must match the workers': the queue is declared with it).
    #[arg(long, env = "RADSAM_DELIVERY_LIMIT", default_value_t = 5)]
    pub delivery_limit: u32,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/radsam")]
    pub database_url: String,
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// The database pool (it lives on `rt`).
pub fn db(args: &ServiceArgs, rt: &tokio::runtime::Runtime) -> Result<radsam::db::Db> {
    let _context = rt.enter();
    radsam::db::Db::connect_lazy(&args.database_url).map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))
}

pub fn db_err(e: radsam::db::DbError) -> anyhow::Error {
    anyhow::anyhow!("[{}] {e}", e.code())
}
