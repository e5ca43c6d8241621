//! A real S3 store for tests: `weed mini` from the venv (make setup), on free ports of its own
//! and a folder of its own, stopped when dropped. Shared by the root crate's tests
//! (storage_s3.rs) and the worker's harness (workers/tests/common).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Blocks of ports this test process has already handed out. Every store of a process used to
/// start from the same block: parallel tests could both find it free before either weed bound
/// it, and consecutive ones took the block the last weed had just let go (once in CI a store
/// never listened; its log was gone). Now each block is claimed once per process.
static NEXT_BLOCK: AtomicU16 = AtomicU16::new(0);

fn free_port_base() -> u16 {
    // Eight consecutive ports and the same +10000 (weed's gRPC ports), all free, and all below
    // Linux's ephemeral range (32768 up), where any outgoing connection of the tests (to
    // PostgreSQL, RabbitMQ, the store itself) could take one between this check and weed's bind.
    // Processes start from different blocks (by pid) so that parallel test binaries rarely meet.
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    let seed = (std::process::id() as u16 % 550) * 20;
    loop {
        let i = NEXT_BLOCK.fetch_add(1, Ordering::Relaxed);
        assert!(i < 550, "no free ports for the S3 store");
        let b = 11000 + (seed + i * 20) % 11000;
        if (0..8).all(|k| free(b + k) && free(b + 10000 + k)) {
            return b;
        }
    }
}

/// A weed S3 store on its own ports and folder.
pub struct S3Store {
    pub dir: PathBuf,
    pub base: u16,
    pub child: Option<Child>,
}

impl S3Store {
    pub fn start(dir: &Path) -> Self {
        // A port taken by another process between the check and weed's bind makes weed exit or
        // hang; fresh ports then are as good as the old, so try again a few times, each in a
        // folder of its own (the master keeps its raft state, with its address, in its folder).
        let mut last_error = String::new();
        for attempt in 0..3 {
            let dir = if attempt == 0 { dir.to_path_buf() } else { dir.join(format!("retry-{attempt}")) };
            std::fs::create_dir_all(&dir).unwrap();
            let mut store = Self { dir, base: free_port_base(), child: None };
            match store.launch() {
                Ok(()) => return store,
                Err(e) => last_error = e,
            }
        }
        panic!("{last_error}")
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.base + 3)
    }

    /// Starts the store again on the same ports (tests that restart it want the same endpoint).
    pub fn restart(&mut self) {
        if let Err(e) = self.launch() {
            panic!("{e}")
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        self.stop();
        let b = self.base;
        let log = std::fs::File::create(self.dir.join("weed.log")).unwrap();
        let child = Command::new(radsam::assets::cache_dir().join("venv/bin/weed"))
            .args([
                "mini",
                &format!("-dir={}", self.dir.display()),
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .args([
                format!("-master.port={b}"),
                format!("-volume.port={}", b + 1),
                format!("-filer.port={}", b + 2),
                format!("-s3.port={}", b + 3),
                format!("-admin.port={}", b + 4),
                format!("-webdav.port={}", b + 5),
                format!("-debug.port={}", b + 6),
                format!("-s3.debug.port={}", b + 7),
            ])
            .env("AWS_ACCESS_KEY_ID", "radsam")
            .env("AWS_SECRET_ACCESS_KEY", "radsam-secret")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("weed from the venv (make setup)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        while std::net::TcpStream::connect(("127.0.0.1", b + 3)).is_err() {
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                self.stop();
                let log = std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let how = exited.map_or("did not listen within 90 s".to_string(), |s| format!("exited ({s})"));
                return Err(format!(
                    "the S3 store on ports {b}.. {how}; the end of its log:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for S3Store {
    fn drop(&mut self) {
        self.stop();
    }
}
