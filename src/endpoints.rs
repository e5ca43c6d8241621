//! Where the broker and the database are: the flags (with their environment variables and
//! development defaults) shared by the worker and the service commands of the CLI, so the two
//! never disagree.

#[derive(clap::Args, Debug, Clone)]
pub struct ServiceEndpoints {
    /// RabbitMQ URL.
    #[arg(long, env = "RADSAM_AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Prefix of the exchanges and queues (PREFIX.jobs, PREFIX.jobs.dead, PREFIX.results).
    #[arg(long, env = "RADSAM_QUEUE_PREFIX", default_value = "radsam")]
    pub queue_prefix: String,
    /// Deliveries after which the broker dead-letters a message (poison messages); the jobs queue
    /// is declared with it, so workers and `radsam submit` must agree.
    #[arg(long, env = "RADSAM_DELIVERY_LIMIT", default_value_t = 5)]
    pub delivery_limit: u32,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/radsam")]
    pub database_url: String,
}
