//! RabbitMQ (lapin): the topology every worker and submitter declares, and publishing with
//! publisher confirms. Jobs go to a durable exchange and a quorum queue whose delivery limit
//! dead-letters a message that keeps killing workers; rejected jobs go to the dead-letter queue;
//! result events go to a topic exchange that dashboards bind their own queues to.

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::{SystemTime, UNIX_EPOCH};

/// Names of everything declared. `new("radsam")` gives radsam.jobs, radsam.jobs.dlx,
/// radsam.jobs.dead and radsam.results; another prefix isolates a deployment (or a test).
#[derive(Debug, Clone)]
pub struct Topology {
    pub jobs_exchange: String,
    pub jobs_queue: String,
    pub dead_exchange: String,
    pub dead_queue: String,
    pub results_exchange: String,
    /// Deliveries after which the broker dead-letters a message (a job that crashes workers).
    pub delivery_limit: u32,
}

impl Topology {
    pub fn new(prefix: &str, delivery_limit: u32) -> Self {
        Self {
            jobs_exchange: format!("{prefix}.jobs"),
            jobs_queue: format!("{prefix}.jobs"),
            dead_exchange: format!("{prefix}.jobs.dlx"),
            dead_queue: format!("{prefix}.jobs.dead"),
            results_exchange: format!("{prefix}.results"),
            delivery_limit,
        }
    }

    /// Declares the exchanges and queues (idempotent; every client does it on connect).
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel.exchange_declare(&self.jobs_exchange, ExchangeKind::Direct, durable, FieldTable::default()).await?;
        channel.exchange_declare(&self.dead_exchange, ExchangeKind::Fanout, durable, FieldTable::default()).await?;
        channel.exchange_declare(&self.results_exchange, ExchangeKind::Topic, durable, FieldTable::default()).await?;

        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        args.insert("x-delivery-limit".into(), AMQPValue::LongInt(self.delivery_limit as i32));
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(self.dead_exchange.as_str().into()));
        let queue = QueueDeclareOptions { durable: true, ..Default::default() };
        channel.queue_declare(&self.jobs_queue, queue, args).await?;
        channel
            .queue_bind(
                &self.jobs_queue,
                &self.jobs_exchange,
                &self.jobs_queue,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        let mut dead_args = FieldTable::default();
        dead_args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        channel.queue_declare(&self.dead_queue, queue, dead_args).await?;
        channel
            .queue_bind(&self.dead_queue, &self.dead_exchange, "", QueueBindOptions::default(), FieldTable::default())
            .await?;
        Ok(())
    }
}

/// Opens a connection (amqp://user:pass@host:port/vhost).
pub async fn connect(url: &str, name: &str) -> Result<Connection, lapin::Error> {
    let mut props = ConnectionProperties::default();
    props.client_properties.insert("connection_name".into(), AMQPValue::LongString(name.into()));
    Connection::connect(url, props).await
}

/// A channel in confirm mode: every publish waits for the broker to take responsibility.
pub async fn confirm_channel(connection: &Connection) -> Result<Channel, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(channel)
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not confirm the message (nack)")]
    Nacked,
}

fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A short-string property (message id, correlation id), or None when the value would not fit:
/// AMQP gives it 255 bytes, and lapin would write a longer one with a wrapped length byte, a
/// corrupt frame that makes the broker close the connection. The body still carries the value.
fn short(s: &str) -> Option<ShortString> {
    (s.len() <= 255).then(|| ShortString::from(s))
}

async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), PublishError> {
    let confirm =
        channel.basic_publish(exchange, routing_key, BasicPublishOptions::default(), body, props).await?.await?;
    if confirm.is_nack() {
        return Err(PublishError::Nacked);
    }
    Ok(())
}

/// Enqueues one job body (persistent, with its id, correlation id, priority and a timestamp
/// from which workers measure queue lag); returns once the broker confirmed it.
pub async fn publish_job(
    channel: &Channel,
    topology: &Topology,
    job_id: &str,
    correlation_id: Option<&str>,
    priority: u8,
    body: &[u8],
) -> Result<(), PublishError> {
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_priority(priority)
        .with_timestamp(now_seconds());
    if let Some(id) = short(job_id) {
        props = props.with_message_id(id);
    }
    if let Some(c) = correlation_id.and_then(short) {
        props = props.with_correlation_id(c);
    }
    publish(channel, &topology.jobs_exchange, &topology.jobs_queue, body, props).await
}

/// Publishes a result event; the routing key is the outcome (succeeded / failed).
pub async fn publish_result(
    channel: &Channel,
    topology: &Topology,
    outcome: &str,
    job_id: &str,
    correlation_id: Option<&str>,
    event: &serde_json::Value,
) -> Result<(), PublishError> {
    let body = serde_json::to_vec(event).expect("a JSON value serialises");
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_timestamp(now_seconds());
    if let Some(id) = short(job_id) {
        props = props.with_message_id(id);
    }
    if let Some(c) = correlation_id.and_then(short) {
        props = props.with_correlation_id(c);
    }
    publish(channel, &topology.results_exchange, outcome, &body, props).await
}

/// How many times the broker has delivered this message before and had it back (a worker's
/// requeue or a dead worker): the quorum queue's `x-delivery-count` header, absent on the first.
pub fn delivery_count(props: &BasicProperties) -> u32 {
    let value = props.headers().as_ref().and_then(|h| h.inner().get("x-delivery-count").cloned());
    let count = match value {
        Some(AMQPValue::LongLongInt(n)) => n,
        Some(AMQPValue::LongInt(n)) => n as i64,
        Some(AMQPValue::LongUInt(n)) => n as i64,
        Some(AMQPValue::ShortInt(n)) => n as i64,
        Some(AMQPValue::ShortUInt(n)) => n as i64,
        Some(AMQPValue::ShortShortInt(n)) => n as i64,
        Some(AMQPValue::ShortShortUInt(n)) => n as i64,
        _ => 0,
    };
    count.clamp(0, u32::MAX as i64) as u32
}

/// Whether the broker will dead-letter this message rather than deliver it again if it comes
/// back: it has already come back `delivery_limit` times.
pub fn is_last_delivery(props: &BasicProperties, delivery_limit: u32) -> bool {
    delivery_count(props) >= delivery_limit
}

/// Seconds since the message was published, from its timestamp property.
pub fn queue_lag_seconds(props: &BasicProperties) -> Option<f64> {
    let sent = (*props.timestamp())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    Some((now - sent as f64).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_delivery_is_the_one_whose_count_reached_the_limit() {
        let with = |v: AMQPValue| {
            let mut h = FieldTable::default();
            h.insert("x-delivery-count".into(), v);
            BasicProperties::default().with_headers(h)
        };
        assert_eq!(delivery_count(&BasicProperties::default()), 0, "a first delivery has no header");
        assert!(!is_last_delivery(&BasicProperties::default(), 5));
        assert_eq!(delivery_count(&with(AMQPValue::LongLongInt(4))), 4);
        assert!(!is_last_delivery(&with(AMQPValue::LongLongInt(4)), 5));
        assert!(is_last_delivery(&with(AMQPValue::LongLongInt(5)), 5));
        assert!(is_last_delivery(&with(AMQPValue::LongInt(7)), 5));
        assert!(is_last_delivery(&with(AMQPValue::ShortShortUInt(0)), 0), "limit 0: every delivery is the last");
        assert_eq!(delivery_count(&with(AMQPValue::LongString("x".into()))), 0, "an unreadable count counts as none");
    }
}
