//! A real S3 store for tests: `weed mini` from the venv (make setup), on free ports of its own
//! and a folder of its own, stopped when dropped. Shared by the root crate's tests
//! (storage_s3.rs) and the worker's harness (workers/tests/common).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port_base() -> u16 {
    // Seven consecutive ports and the same +10000 (weed's gRPC ports), all free.
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    let seed = (std::process::id() as u16 % 300) * 20;
    (0..500u16)
        .map(|i| 21000 + (seed + i * 20) % 9000)
        .find(|&b| (0..8).all(|k| free(b + k) && free(b + 10000 + k)))
        .expect("free ports for the S3 store")
}

/// A weed S3 store on its own ports and folder.
pub struct S3Store {
    pub dir: PathBuf,
    pub base: u16,
    pub child: Option<Child>,
}

impl S3Store {
    pub fn start(dir: &Path) -> Self {
        let mut store = Self { dir: dir.to_path_buf(), base: free_port_base(), child: None };
        store.restart();
        store
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.base + 3)
    }

    pub fn restart(&mut self) {
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
            assert!(Instant::now() < deadline, "the S3 store did not start: {}", self.dir.join("weed.log").display());
            std::thread::sleep(Duration::from_millis(200));
        }
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
