//! The chaos harness (issue #18): small jobs through two real workers while a seeded schedule
//! SIGKILLs workers (a new one starts in its place), restarts RabbitMQ, stops the S3 store for a
//! while and restarts PostgreSQL. Afterwards it counts, from PostgreSQL, RabbitMQ and S3: jobs
//! succeeded, failed by code, lost (no `jobs` row and no `rejected_messages` row), completed twice
//! (more result rows than targets), stuck (not final), objects without a succeeded row, scratch
//! folders left behind. The target is 0 lost, 0 doubled, 0 stuck, 0 orphans, 0 scratch left.
//!
//! `chaos_short` (in `make test`): 16 jobs, 2 kills, each service disturbed once.
//! `chaos_full` (`make chaos`, ignored otherwise): CHAOS_JOBS (300), CHAOS_KILLS (20),
//! CHAOS_S3_OUTAGE_SECONDS (30), CHAOS_SEED (1); writes the record bench/results/chaos.md.
//! Both restart the machine's RabbitMQ and PostgreSQL: run alone (`--test-threads=1`, as make does).

mod common;

use common::*;
use radsam::volume::phantom::{generate, PhantomConfig};
use radsam::volume::write_nifti;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The harness's own seeded generator (splitmix64): the same seed, the same schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Event {
    KillWorker,
    RestartBroker,
    StopStore,
    RestartDatabase,
}

struct Settings {
    jobs: usize,
    kills: usize,
    workers: usize,
    s3_outage: Duration,
    seed: u64,
}

#[derive(Default)]
struct Record {
    submitted: usize,
    expected_failures: usize,
    succeeded: usize,
    failed_by_code: BTreeMap<String, usize>,
    lost: Vec<String>,
    doubled: Vec<String>,
    stuck: Vec<String>,
    orphan_objects: Vec<String>,
    scratch_left: usize,
    second_attempts: usize,
    events: Vec<(f64, String)>,
    seconds: f64,
}

/// A small CT (a 64 x 64 x 8 synthetic phantom) in the store, and the liver's box on each slice.
fn small_volume(world: &World) -> Vec<Option<[usize; 4]>> {
    let p = generate(&PhantomConfig { dims: [64, 64, 8], spacing: [5.0, 5.0, 10.0], ..Default::default() }, 7);
    let path = world._dir.path().join("small.nii.gz");
    write_nifti(&path, &p.volume).unwrap();
    world.rt.block_on(async {
        world.storage.ensure_bucket("s3://scans/").await.unwrap();
        world.storage.put("s3://scans/small.nii.gz", std::fs::read(&path).unwrap()).await.unwrap();
    });
    let liver = p.classes.iter().find(|(_, n)| *n == "liver").expect("the phantom has a liver").0;
    let [nx, ny, nz] = p.volume.dims();
    (0..nz)
        .map(|z| {
            let pix: Vec<(usize, usize)> = (0..ny)
                .flat_map(|y| (0..nx).map(move |x| (x, y)))
                .filter(|&(x, y)| p.labels[x + nx * (y + ny * z)] == liver)
                .collect();
            (!pix.is_empty()).then(|| {
                [
                    pix.iter().map(|p| p.0).min().unwrap(),
                    pix.iter().map(|p| p.1).min().unwrap(),
                    pix.iter().map(|p| p.0).max().unwrap(),
                    pix.iter().map(|p| p.1).max().unwrap(),
                ]
            })
        })
        .collect()
}

/// Job `i`: the liver from a box on one slice, over 1 or 2 slices; every 25th job carries a box
/// outside the slice, failed with PROMPT_INVALID, so that failures too are counted under chaos.
fn job(i: usize, boxes: &[Option<[usize; 4]>], rng: &mut Rng) -> (String, String, bool) {
    let slices: Vec<usize> = boxes.iter().enumerate().filter(|(_, b)| b.is_some()).map(|(z, _)| z).collect();
    let z = slices[rng.below(slices.len())];
    let other = if z + 1 < boxes.len() && boxes[z + 1].is_some() && rng.below(2) == 0 { z + 1 } else { z };
    let [x0, y0, x1, y1] = boxes[z].unwrap();
    let bad = i % 25 == 24;
    let bbox = if bad { json!([x0, y0, 500, 500]) } else { json!([x0, y0, x1 + 1, y1 + 1]) };
    let id = format!("chaos-{i:04}");
    let body = json!({
        "schema_version": 1, "job_id": id, "correlation_id": format!("study-{i}"),
        "volume_uri": "s3://scans/small.nii.gz",
        "targets": [{"label": "liver", "initial_prompt": {"slice": z, "box": bbox}, "boundaries": {"top": z, "bottom": other}}]
    });
    (id, body.to_string(), bad)
}

fn ctl(program: &str, args: &[&str]) {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "{program} {args:?} failed");
}

fn restart_database() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("PostgreSQL's clusters")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .min()
        .expect("one cluster");
    ctl("pg_ctlcluster", &["--skip-systemctl-redirect", &version, "main", "restart"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", 5432)).is_err() {
        assert!(Instant::now() < deadline, "PostgreSQL did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run(settings: &Settings) -> Record {
    let mut world = World::new("chaos");
    let boxes = small_volume(&world);
    let tmp = world._dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    // Retries long enough to outlast each outage (the S3 store's, a restart's), as in production.
    let env = [("TMPDIR", tmp.to_str().unwrap()), ("RADSAM_RETRIES", "8"), ("RADSAM_THREADS", "1")];
    let mut workers: Vec<Worker> = (0..settings.workers).map(|_| world.worker(&env)).collect();
    let mut rng = Rng(settings.seed);
    let mut record = Record::default();

    let jobs: Vec<(String, String, bool)> = (0..settings.jobs).map(|i| job(i, &boxes, &mut rng)).collect();
    record.submitted = jobs.len();
    record.expected_failures = jobs.iter().filter(|j| j.2).count();
    // The schedule: the kills and one disturbance of each service, in a seeded order, each fired
    // when a seeded share of the jobs has reached a final state.
    let mut events: Vec<Event> = std::iter::repeat(Event::KillWorker)
        .take(settings.kills)
        .chain([Event::RestartBroker, Event::StopStore, Event::RestartDatabase])
        .collect();
    for i in (1..events.len()).rev() {
        events.swap(i, rng.below(i + 1));
    }
    let at: Vec<usize> = (1..=events.len()).map(|k| k * settings.jobs / (events.len() + 1)).collect();

    let t0 = Instant::now();
    // Submitted in waves, so that the queue is never empty when an event fires.
    let mut next_job = 0;
    let mut next_event = 0;
    let final_count = |world: &World| -> usize {
        world.query::<String>("SELECT job_id FROM jobs WHERE status IN ('succeeded', 'failed') AND $1 = $1", "").len()
    };
    let deadline = t0 + Duration::from_secs(120 + 20 * settings.jobs as u64 + 60 * events.len() as u64);
    loop {
        let done = final_count(&world);
        while next_job < jobs.len() && next_job < done + 8 * settings.workers {
            world.submit(&jobs[next_job].1);
            next_job += 1;
        }
        if next_event < events.len() && done >= at[next_event] {
            let e = events[next_event];
            next_event += 1;
            let what = match e {
                Event::KillWorker => {
                    let k = rng.below(workers.len());
                    let pid = workers[k].child.id();
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    let _ = workers[k].child.wait();
                    std::thread::sleep(Duration::from_millis(rng.below(2000) as u64));
                    workers[k] = world.worker(&env);
                    format!("SIGKILL worker {k} (pid {pid}); a new one started")
                }
                Event::RestartBroker => {
                    restart_broker();
                    "RabbitMQ restarted (stop_app, 2 s, start_app)".to_string()
                }
                Event::StopStore => {
                    world.s3.stop();
                    std::thread::sleep(settings.s3_outage);
                    world.s3.restart();
                    format!("S3 store stopped for {} s", settings.s3_outage.as_secs())
                }
                Event::RestartDatabase => {
                    restart_database();
                    "PostgreSQL restarted (fast shutdown)".to_string()
                }
            };
            eprintln!("chaos: {:>6.1} s, {done}/{} final: {what}", t0.elapsed().as_secs_f64(), jobs.len());
            record.events.push((t0.elapsed().as_secs_f64(), what));
        }
        if next_job == jobs.len() && next_event == events.len() && done == jobs.len() {
            break;
        }
        for (k, w) in workers.iter_mut().enumerate() {
            if let Ok(Some(status)) = w.child.try_wait() {
                panic!("worker {k} exited on its own ({status}): {}", w.log_tail());
            }
        }
        if Instant::now() > deadline {
            eprintln!("chaos: deadline reached with {done}/{} final", jobs.len());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    record.seconds = t0.elapsed().as_secs_f64();
    // Stop the workers as a supervisor would (SIGTERM: finish the job in hand, then exit).
    for w in workers.iter_mut() {
        w.terminate();
    }

    // The count.
    let status: BTreeMap<String, String> = world.rt.block_on(async {
        let pool = sqlx::PgPool::connect(&world.database_url).await.unwrap();
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT job_id, status FROM jobs").fetch_all(&pool).await.unwrap();
        rows.into_iter().collect()
    });
    let (codes, rows, attempts, rejected): (
        Vec<(String, Option<String>)>,
        Vec<(String, i64)>,
        Vec<(String, i32)>,
        BTreeSet<String>,
    ) = world.rt.block_on(async {
        let pool = sqlx::PgPool::connect(&world.database_url).await.unwrap();
        let codes = sqlx::query_as("SELECT job_id, error_code FROM jobs WHERE status = 'failed'")
            .fetch_all(&pool)
            .await
            .unwrap();
        let rows =
            sqlx::query_as("SELECT job_id, count(*) FROM results GROUP BY job_id").fetch_all(&pool).await.unwrap();
        let attempts = sqlx::query_as("SELECT job_id, attempts FROM jobs").fetch_all(&pool).await.unwrap();
        let rejected: Vec<(Option<String>,)> =
            sqlx::query_as("SELECT job_id FROM rejected_messages").fetch_all(&pool).await.unwrap();
        (codes, rows, attempts, rejected.into_iter().filter_map(|r| r.0).collect())
    });
    for (id, _, _) in &jobs {
        match status.get(id).map(String::as_str) {
            Some("succeeded") => record.succeeded += 1,
            Some("failed") => {}
            Some(_) => record.stuck.push(id.clone()),
            None if rejected.contains(id) => {}
            None => record.lost.push(id.clone()),
        }
    }
    for (_, code) in codes {
        *record.failed_by_code.entry(code.unwrap_or_else(|| "(none)".into())).or_default() += 1;
    }
    record.doubled = rows.iter().filter(|(_, n)| *n > 1).map(|(id, _)| id.clone()).collect();
    record.second_attempts = attempts.iter().filter(|(_, a)| *a > 1).count();
    let listing = tempfile::tempdir().unwrap();
    for key in world.objects("s3://results/", listing.path()) {
        let job_id = key.split('/').next().unwrap_or("").to_string();
        if status.get(&job_id).map(String::as_str) != Some("succeeded") {
            record.orphan_objects.push(key);
        }
    }
    record.scratch_left = std::fs::read_dir(&tmp)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("radsam-job-"))
        .count();
    // Nothing left in the queue, nothing half-settled.
    let left = world.drain(&world.topology.jobs_queue);
    assert!(left.is_empty(), "{} messages still queued", left.len());
    record
}

fn check(record: &Record) {
    assert!(record.lost.is_empty(), "lost: {:?}", record.lost);
    assert!(record.doubled.is_empty(), "completed twice: {:?}", record.doubled);
    assert!(record.stuck.is_empty(), "stuck: {:?}", record.stuck);
    assert!(record.orphan_objects.is_empty(), "objects without a row: {:?}", record.orphan_objects);
    assert_eq!(record.scratch_left, 0, "scratch folders left");
    assert_eq!(
        record.succeeded + record.expected_failures,
        record.submitted,
        "every valid job succeeds, every bad one fails: {:?}",
        record.failed_by_code
    );
    assert_eq!(
        record.failed_by_code.get("PROMPT_INVALID").copied().unwrap_or(0),
        record.expected_failures,
        "{:?}",
        record.failed_by_code
    );
}

fn markdown(settings: &Settings, r: &Record) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mut md = format!(
        "# Chaos record\n\nCommand: `make chaos` (workers/tests/chaos.rs, `chaos_full`): {} jobs, {} workers, {} SIGKILLs, RabbitMQ, PostgreSQL restarted once each, the S3 store stopped for {} s; seed {}. Machine: {cpu}, {cores} cores, CPU only. Written {}.\n\n",
        settings.jobs, settings.workers, settings.kills, settings.s3_outage.as_secs(), settings.seed, chrono_like_now()
    );
    md += "| measure | count | target |\n|---|---|---|\n";
    md += &format!(
        "| jobs submitted | {} | |\n| succeeded | {} | {} (every valid job) |\n",
        r.submitted,
        r.succeeded,
        r.submitted - r.expected_failures
    );
    for (code, n) in &r.failed_by_code {
        md += &format!(
            "| failed, `{code}` | {n} | {} |\n",
            if code == "PROMPT_INVALID" {
                format!("{} (the jobs with a bad box)", r.expected_failures)
            } else {
                "0".into()
            }
        );
    }
    md += &format!("| lost (no row anywhere) | {} | 0 |\n| completed twice | {} | 0 |\n| stuck (not final) | {} | 0 |\n| objects without a succeeded row | {} | 0 |\n| scratch folders left | {} | 0 |\n| jobs with a second attempt | {} | |\n| wall time | {:.0} s | |\n\n",
        r.lost.len(), r.doubled.len(), r.stuck.len(), r.orphan_objects.len(), r.scratch_left, r.second_attempts, r.seconds);
    md += "Schedule (seconds from the first job):\n\n";
    for (t, what) in &r.events {
        md += &format!("- {t:.1} s: {what}\n");
    }
    md
}

fn chrono_like_now() -> String {
    let out = Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]).output().ok();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

#[test]
fn chaos_short() {
    let settings = Settings { jobs: 16, kills: 2, workers: 2, s3_outage: Duration::from_secs(5), seed: 1 };
    let record = run(&settings);
    eprintln!("{}", markdown(&settings, &record));
    check(&record);
}

#[test]
#[ignore = "long: make chaos"]
fn chaos_full() {
    let var = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let settings = Settings {
        jobs: var("CHAOS_JOBS", 300) as usize,
        kills: var("CHAOS_KILLS", 20) as usize,
        workers: 2,
        s3_outage: Duration::from_secs(var("CHAOS_S3_OUTAGE_SECONDS", 30)),
        seed: var("CHAOS_SEED", 1),
    };
    let record = run(&settings);
    let md = markdown(&settings, &record);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results/chaos.md");
    std::fs::write(&out, &md).unwrap();
    eprintln!("{md}\nrecord: {}", out.display());
    check(&record);
}
