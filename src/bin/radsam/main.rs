//! The `radsam` command line: one file per command, thin over the library.
//!   radsam segment            3D objects from one prompt plus boundaries, correction clicks; job files
//!   radsam predict            a model on chosen slices with given prompts
//!   radsam bench              the paper's benchmark over datasets and models: CSV, tables, plots
//!   radsam bench-model        encoder/decoder timings (bench/run_model_bench.sh)
//!   radsam bench-propagation  the paper's protocol on the sample CT (bench/run_propagation_bench.sh)
//!   radsam submit / results   enqueue jobs on RabbitMQ; read per-organ results from PostgreSQL
//!   radsam accept             record a clinician's acceptance (or edit) of a result
//!   radsam migrate / upload   apply the schema; put a volume into S3
//!   radsam models / promote / rollback   the model registry the trainer service fills

mod accept;
mod bench_model;
mod benchmark;
mod common;
mod predict;
mod registry;
mod results;
mod segment;
mod services;
mod submit;
mod upload;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "radsam", version, about = "RadSAM: 3D CT segmentation from one 2D prompt")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a model on chosen slices of a volume with given prompts; write the masks (NIfTI), the
    /// low-resolution logits (.npy) and the IoU predictions (JSON).
    Predict(predict::PredictArgs),
    /// Segment whole 3D objects: one prompt on one slice plus the object's boundaries, the mask
    /// carried slice to slice (RadSAM), then correction clicks. Prompts from flags or a job file.
    Segment(segment::SegmentArgs),
    /// The paper's benchmark on labelled CT (dataset folders, pairs, phantoms) for any set of
    /// models: volume-level and slice-level prompting with 0..N simulated clicks, oracle masks,
    /// 95% intervals, known vs unknown classes; CSV, Markdown tables, PNG plots. Resumable.
    Bench(benchmark::BenchmarkArgs),
    /// Time the image encoder (per slice and batched) and the decoder on sample CT slices.
    BenchModel(bench_model::BenchArgs),
    /// The paper's protocol on the sample CT's organs (Dice: volume-level mask vs box carry,
    /// slice-level, after clicks) and the timing of a 100-slice box-carry propagation.
    BenchPropagation(bench_model::BenchPropagationArgs),
    /// Enqueue segmentation jobs (files, or stdin: a job, an array, or JSON lines) on RabbitMQ.
    Submit(submit::SubmitArgs),
    /// Per-organ results of jobs from PostgreSQL, optionally waiting for them to finish.
    Results(results::ResultsArgs),
    /// Record that a clinician accepted a result as is or with an edited mask.
    Accept(accept::AcceptArgs),
    /// Apply the PostgreSQL schema (migrations/).
    Migrate(results::MigrateArgs),
    /// Upload a local file or folder to S3 (or a file:// root).
    Upload(upload::UploadArgs),
    /// List the model registry: versions, parents, evaluations, which one is promoted.
    Models(registry::ModelsArgs),
    /// Make a registered version the one workers load (between jobs).
    Promote(registry::PromoteArgs),
    /// Return to the version promoted before the current one.
    Rollback(registry::RollbackArgs),
}

/// One line per panic on stderr, never a backtrace (even with RUST_BACKTRACE set): the panics the
/// CLI meets on bad input are caught and become an error with a code (a decoder on a corrupt
/// DICOM), and the code, not a stack dump, is what the user needs.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let message = radsam::job::text::printable(&radsam::model::panic_message(info.payload()), 4000);
        eprintln!("panic{location}: {message}");
    }));
}

fn main() {
    radsam::allocator::keep_freed_memory();
    quiet_panics();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Predict(a) => predict::predict(a),
        Command::Segment(a) => segment::segment(a),
        Command::Bench(a) => benchmark::benchmark(a),
        Command::BenchModel(a) => bench_model::bench_model(a),
        Command::BenchPropagation(a) => bench_model::bench_propagation(a),
        Command::Submit(a) => submit::submit(a),
        Command::Results(a) => results::results(a),
        Command::Accept(a) => accept::accept(a),
        Command::Migrate(a) => results::migrate(a),
        Command::Upload(a) => upload::upload(a),
        Command::Models(a) => registry::models(a),
        Command::Promote(a) => registry::promote(a),
        Command::Rollback(a) => registry::rollback(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
