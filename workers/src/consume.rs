//! The consume loop: connect (retrying until the broker answers), declare the topology, take
//! deliveries one at a time, and after a broker restart or a dropped connection start over.
//! Shutdown (SIGTERM/SIGINT) stops taking deliveries, lets the job in hand finish within the
//! grace period, and otherwise returns it to the queue. A worker whose model thread stopped (a
//! task panicked) stops once that delivery is settled: it could only fail the jobs that follow,
//! so the binary exits with EXIT_MODEL_STOPPED and its supervisor starts a fresh process.

use crate::worker::Worker;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// The exit status of a worker whose model thread stopped (EX_SOFTWARE of sysexits.h).
pub const EXIT_MODEL_STOPPED: i32 = 70;

/// Why a worker stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stopped {
    /// Shutdown was requested and nothing is in hand.
    Shutdown,
    /// The grace period ended with the model still busy on a job (returned to the queue): the
    /// model thread cannot be interrupted, so the process must end without waiting for it.
    ModelBusy,
    /// The model thread stopped (a task panicked): exit with EXIT_MODEL_STOPPED.
    ModelStopped,
}

impl Stopped {
    /// The process's exit status.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Shutdown | Self::ModelBusy => 0,
            Self::ModelStopped => EXIT_MODEL_STOPPED,
        }
    }
}

/// Resolves once shutdown was requested.
pub async fn requested(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Sets the flag on SIGTERM or SIGINT.
pub fn on_signals(tx: watch::Sender<bool>) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: finishing the job in hand, then stopping"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT: finishing the job in hand, then stopping"),
        }
        let _ = tx.send(true);
    });
}

/// How often the queue's depth is read for /metrics.
const QUEUE_POLL: Duration = Duration::from_secs(5);

/// Reads the jobs queue's depth and consumers (a passive declare) every QUEUE_POLL into the metrics.
async fn poll_queue(channel: lapin::Channel, queue: String, metrics: std::sync::Arc<crate::telemetry::Metrics>) {
    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    loop {
        match channel.queue_declare(&queue, passive, FieldTable::default()).await {
            Ok(q) => metrics.set_queue(q.message_count(), q.consumer_count()),
            Err(e) => {
                warn!("cannot read the queue's depth ({e}); /metrics keeps the last reading");
                return;
            }
        }
        tokio::time::sleep(QUEUE_POLL).await;
    }
}

/// Aborts a task when dropped (when the session it belongs to ends, however it ends).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Worker {
    /// Takes deliveries until shutdown or until the model thread stopped.
    pub(crate) async fn consume(&self, mut shutdown: watch::Receiver<bool>) -> Stopped {
        let mut wait = Duration::from_millis(500);
        let mut stopped = Stopped::Shutdown;
        while !*shutdown.borrow() {
            match self.session(&mut shutdown).await {
                Ok(why) => {
                    stopped = why;
                    break;
                }
                Err(e) => {
                    self.health.broker_connected.store(false, Ordering::Relaxed);
                    warn!("broker connection lost or refused ({e}); reconnecting in {:.1} s", wait.as_secs_f64());
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = requested(&mut shutdown) => break,
                    }
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
        self.health.broker_connected.store(false, Ordering::Relaxed);
        info!("stopped");
        stopped
    }

    /// One connection's life. Ok means the worker stops (why); Err means reconnect.
    async fn session(&self, shutdown: &mut watch::Receiver<bool>) -> Result<Stopped, lapin::Error> {
        let connection = radsam::queue::connect(&self.config.endpoints.amqp_url, &self.name).await?;
        let channel = connection.create_channel().await?;
        self.topology.declare(&channel).await?;
        channel.basic_qos(self.config.prefetch, BasicQosOptions::default()).await?;
        let events = radsam::queue::confirm_channel(&connection).await?;
        let mut consumer = channel
            .basic_consume(&self.topology.jobs_queue, &self.name, BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        // The queue's depth for /metrics, on a channel of its own (a failed passive declare closes
        // its channel); the poller ends with this connection.
        let poller = tokio::spawn(poll_queue(
            connection.create_channel().await?,
            self.topology.jobs_queue.clone(),
            self.metrics.clone(),
        ));
        let _stop_poller = AbortOnDrop(poller);
        self.metrics.broker_connections.inc();
        self.health.broker_connected.store(true, Ordering::Relaxed);
        info!(queue = %self.topology.jobs_queue, prefetch = self.config.prefetch, "connected; waiting for jobs");
        loop {
            let delivery = tokio::select! {
                d = consumer.next() => d,
                _ = requested(shutdown) => {
                    // Unacknowledged prefetched messages return to the queue when the channel closes.
                    let _ = connection.close(200, "worker shutting down").await;
                    return Ok(Stopped::Shutdown);
                }
            };
            let delivery = match delivery {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Err(e),
                None => return Err(lapin::Error::InvalidChannelState(lapin::ChannelState::Closed)),
            };
            self.metrics.in_flight.inc();
            let handling = self.handle(&delivery, &events);
            tokio::pin!(handling);
            let grace = Duration::from_secs(self.config.shutdown_grace_seconds);
            let outcome = tokio::select! {
                o = &mut handling => Some(o),
                _ = async { requested(shutdown).await; tokio::time::sleep(grace).await } => None,
            };
            self.metrics.in_flight.dec();
            match outcome {
                Some(o) => {
                    self.metrics.jobs.with_label_values(&[o.label()]).inc();
                    if let Some(why) = self.health.model_stopped() {
                        // The delivery is settled (the job that panicked failed and dead-lettered,
                        // or requeued); nothing else is in hand.
                        error!("stopping: {why}");
                        let _ = connection.close(200, "worker model stopped").await;
                        return Ok(Stopped::ModelStopped);
                    }
                }
                None => {
                    warn!("the grace period ended with a job in hand: returning it to the queue");
                    self.metrics.jobs.with_label_values(&["requeued"]).inc();
                    let _ = delivery.nack(BasicNackOptions { requeue: true, multiple: false }).await;
                    let _ = connection.close(200, "worker shutting down").await;
                    // The model thread cannot be interrupted; the process ends without it.
                    error!("stopping with the model still busy");
                    return Ok(Stopped::ModelBusy);
                }
            }
        }
    }
}
