//! The queue service's test harness, shared by service.rs and chaos.rs: RabbitMQ and PostgreSQL
//! of the machine, an S3 store (weed) per world on its own ports, real worker processes.
#![allow(dead_code)]

use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use radsam::queue::Topology;
use radsam::storage::{Storage, StorageConfig};
use serde_json::{json, Value};
use sqlx::Row;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn cache() -> PathBuf {
    radsam::assets::cache_dir()
}

// The S3 store is the root crate's test helper too (tests/storage_s3.rs): one implementation.
#[path = "../../../tests/s3_store/mod.rs"]
mod s3_store;
pub use s3_store::S3Store;

/// One test's world: queue prefix, database, S3 store with the sample CT in it.
pub struct World {
    pub name: String,
    pub topology: Topology,
    pub database_url: String,
    pub s3: S3Store,
    pub storage: Storage,
    pub _dir: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
}

impl World {
    pub fn new(test: &str) -> Self {
        let name = format!("t{}_{test}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let s3 = S3Store::start(dir.path());
        let storage = Storage::new(&StorageConfig {
            s3_endpoint: Some(s3.endpoint()),
            region: "us-east-1".into(),
            access_key: "radsam".into(),
            secret_key: "radsam-secret".into(),
            file_roots: vec![],
        });
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let database_url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        rt.block_on(async {
            let admin =
                sqlx::PgPool::connect(PG_ADMIN).await.expect("PostgreSQL on 127.0.0.1:5432 (scripts/services.sh)");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&admin).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
            let data = radsam::assets::sample_data_dir();
            storage.ensure_bucket("s3://scans/").await.unwrap();
            storage.put_dir("s3://scans/ct/", &data.join("example_ct_dicom")).await.unwrap();
            storage
                .put("s3://scans/labels.nii.gz", std::fs::read(data.join("example_seg_dicom.nii.gz")).unwrap())
                .await
                .unwrap();
        });
        let topology = Topology::new(&name, 5);
        Self { name, topology, database_url, s3, storage, _dir: dir, rt }
    }

    pub fn worker(&self, extra: &[(&str, &str)]) -> Worker {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log_path = self._dir.path().join(format!("worker-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_radsam-worker"));
        cmd.env("RADSAM_AMQP_URL", AMQP)
            .env("RADSAM_QUEUE_PREFIX", &self.name)
            .env("DATABASE_URL", &self.database_url)
            .env("RADSAM_RESULTS_URI", "s3://results")
            .env("RADSAM_S3_ENDPOINT", self.s3.endpoint())
            .env("AWS_ACCESS_KEY_ID", "radsam")
            .env("AWS_SECRET_ACCESS_KEY", "radsam-secret")
            .env("RADSAM_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("RADSAM_DEVICE", "cpu")
            // The world's own embedding cache: its workers share it, no other test's slices are in it.
            .env("RADSAM_CACHE_EMBEDDINGS", self._dir.path().join("embeddings"))
            .env("RADSAM_RETRIES", "6")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let worker = Worker { child, port, log: log_path };
        worker.wait_healthy();
        worker
    }

    pub fn submit(&self, body: &str) {
        let v: Value = serde_json::from_str(body).unwrap_or(json!({}));
        let id = v.get("job_id").and_then(Value::as_str).unwrap_or("not-a-job").to_string();
        self.submit_bytes(&id, body.as_bytes());
    }

    /// Publishes any body, as a router with a bug could, under message id `id`.
    pub fn submit_bytes(&self, id: &str, body: &[u8]) {
        self.rt.block_on(async {
            let conn = radsam::queue::connect(AMQP, "test-submit").await.unwrap();
            let ch = radsam::queue::confirm_channel(&conn).await.unwrap();
            self.topology.declare(&ch).await.unwrap();
            radsam::queue::publish_job(&ch, &self.topology, id, None, 0, body).await.unwrap();
            conn.close(200, "").await.unwrap();
        });
    }

    /// Waits until `sql` (with $1 = `key`) returns at least `n` rows; returns the first column.
    pub fn wait_rows(&self, sql: &str, key: &str, n: usize, seconds: f64, worker: &mut Worker) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        loop {
            let rows: Vec<String> = self.query(sql, key);
            if rows.len() >= n {
                return rows;
            }
            if let Ok(Some(code)) = worker.child.try_wait() {
                panic!("the worker exited ({code}): {}", worker.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "{sql} [{key}]: {} rows after {seconds} s, expected {n}; {}",
                rows.len(),
                worker.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn query<T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
        &self,
        sql: &str,
        job_id: &str,
    ) -> Vec<T> {
        self.rt.block_on(async {
            let pool = sqlx::PgPool::connect(&self.database_url).await.unwrap();
            let rows = sqlx::query(sql).bind(job_id).fetch_all(&pool).await.unwrap();
            rows.iter().map(|r| r.get::<T, _>(0)).collect()
        })
    }

    pub fn status(&self, job_id: &str) -> Option<String> {
        self.rt.block_on(async {
            let pool = sqlx::PgPool::connect(&self.database_url).await.ok()?;
            let exists: bool =
                sqlx::query("SELECT to_regclass('jobs') IS NOT NULL").fetch_one(&pool).await.ok()?.get(0);
            if !exists {
                return None;
            }
            sqlx::query("SELECT status FROM jobs WHERE job_id = $1")
                .bind(job_id)
                .fetch_optional(&pool)
                .await
                .ok()?
                .map(|r| r.get(0))
        })
    }

    pub fn wait_status(&self, job_id: &str, want: &[&str], seconds: u64, workers: &mut [&mut Worker]) -> String {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(s) = self.status(job_id) {
                if want.contains(&s.as_str()) {
                    return s;
                }
            }
            for w in workers.iter_mut() {
                if let Ok(Some(code)) = w.child.try_wait() {
                    panic!("the worker exited ({code}): {}", w.log_tail());
                }
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} did not reach {want:?} in {seconds} s (now {:?}); worker logs: {}",
                self.status(job_id),
                workers.iter().map(|w| w.log_tail()).collect::<Vec<_>>().join("\n---\n")
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Every object under the prefix `uri`, by key below it, fetched into `scratch` (fetching a
    /// prefix copies it whole, into the folder it returns).
    pub fn objects(&self, uri: &str, scratch: &Path) -> Vec<String> {
        match self.rt.block_on(self.storage.fetch(uri, scratch)) {
            Ok(dir) => {
                walk(&dir).into_iter().map(|p| p.strip_prefix(&dir).unwrap().to_string_lossy().into_owned()).collect()
            }
            Err(e) if radsam::error::Coded::code(&e) == "STORAGE_NOT_FOUND" => Vec::new(),
            Err(e) => panic!("listing {uri}: {e}"),
        }
    }

    /// Takes every message waiting in `queue`.
    pub fn drain(&self, queue: &str) -> Vec<Value> {
        self.rt.block_on(async {
            let conn = radsam::queue::connect(AMQP, "test-drain").await.unwrap();
            let ch = conn.create_channel().await.unwrap();
            let mut out = Vec::new();
            while let Some(m) = ch.basic_get(queue, BasicGetOptions { no_ack: true }).await.unwrap() {
                out.push(
                    serde_json::from_slice(&m.delivery.data)
                        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&m.delivery.data)})),
                );
            }
            conn.close(200, "").await.unwrap();
            out
        })
    }

    /// A queue bound to the results exchange for the final events of this test's jobs
    /// (`succeeded`, `failed`), as a consumer of results binds it.
    pub fn bind_events(&self) -> String {
        self.bind_results("events", &["succeeded", "failed"])
    }

    /// A queue bound to the results exchange for the progress events (`progress`).
    pub fn bind_progress(&self) -> String {
        self.bind_results("progress", &["progress"])
    }

    fn bind_results(&self, suffix: &str, keys: &[&str]) -> String {
        let queue = format!("{}.{suffix}", self.name);
        self.rt.block_on(async {
            let conn = radsam::queue::connect(AMQP, "test-events").await.unwrap();
            let ch = conn.create_channel().await.unwrap();
            self.topology.declare(&ch).await.unwrap();
            ch.queue_declare(
                &queue,
                QueueDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
            for key in keys {
                ch.queue_bind(
                    &queue,
                    &self.topology.results_exchange,
                    key,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            }
            conn.close(200, "").await.unwrap();
        });
        queue
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let (name, topology) = (self.name.clone(), self.topology.clone());
        self.rt.block_on(async {
            if let Ok(conn) = radsam::queue::connect(AMQP, "test-cleanup").await {
                if let Ok(ch) = conn.create_channel().await {
                    for q in [
                        &topology.jobs_queue,
                        &topology.dead_queue,
                        &format!("{name}.events"),
                        &format!("{name}.progress"),
                    ] {
                        let _ = ch.queue_delete(q, Default::default()).await;
                    }
                    for x in [&topology.jobs_exchange, &topology.dead_exchange, &topology.results_exchange] {
                        let _ = ch.exchange_delete(x, Default::default()).await;
                    }
                }
                let _ = conn.close(200, "").await;
            }
            if let Ok(admin) = sqlx::PgPool::connect(PG_ADMIN).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await;
            }
        });
    }
}

pub struct Worker {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Worker {
    pub fn http(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, text.split("\r\n\r\n").nth(1).unwrap_or("").to_string()))
    }

    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.http("/healthz").map(|(s, _)| s) != Some(200) {
            assert!(Instant::now() < deadline, "worker not healthy: {}", self.log_tail());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.http("/metrics").expect("metrics");
        body.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }

    /// The worker's whole log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The spleen of the validation scan from one box, over `slices` slices (fewer: a quicker job).
pub fn spleen_job(job_id: &str, top: usize, bottom: usize) -> String {
    json!({
        "schema_version": 1, "job_id": job_id, "correlation_id": "study-1",
        "volume_uri": "s3://scans/ct/",
        "targets": [{
            "label": "spleen", "initial_prompt": {"slice": 12, "box": [291, 245, 392, 377]},
            "boundaries": {"top": top, "bottom": bottom},
            "reference_mask_uri": "s3://scans/labels.nii.gz", "reference_label": 1
        }]
    })
    .to_string()
}

/// Restarts the machine's RabbitMQ as an operator would (`rabbitmqctl stop_app`, 2 s, `start_app`)
/// and waits until it takes connections again.
pub fn restart_broker() {
    for (args, pause) in [(&["stop_app"][..], 2), (&["start_app"][..], 0), (&["await_startup"][..], 0)] {
        let ok = Command::new("rabbitmqctl").args(args).stdout(Stdio::null()).status().is_ok_and(|s| s.success());
        assert!(ok, "rabbitmqctl {args:?} failed");
        std::thread::sleep(Duration::from_secs(pause));
    }
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
