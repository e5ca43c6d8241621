//! What the service commands (submit, accept, results, migrate, upload) share: where the broker,
//! the database and the stores are (the worker's variables and defaults), and a tokio runtime.

use anyhow::Result;

/// The broker and database flags, shared with the worker.
pub use radsam::endpoints::ServiceEndpoints as ServiceArgs;

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// The database pool (it lives on `rt`).
pub fn db(args: &ServiceArgs, rt: &tokio::runtime::Runtime) -> Result<radsam::db::Db> {
    let _context = rt.enter();
    radsam::db::Db::connect_lazy(&args.database_url).map_err(radsam::error::with_code)
}
