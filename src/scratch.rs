//! Leftovers of killed processes: staging folders (`.OUT.partial-PID` beside a CLI's `--out`) and
//! scratch folders (`radsam-job-<PID>-<random>` in the temp dir) carry the PID of the process that made
//! them. A process that is SIGKILLed never removes its own, so the next one removes those whose
//! process is gone. A folder of a live process (another run writing beside the same output, or a
//! PID reused since) is left alone: cleaning is conservative.

use std::path::Path;

/// Whether a process with this PID exists (signal 0 checks without sending anything; EPERM means
/// it exists but belongs to another user).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The PID in an entry named `{prefix}{PID}` or `{prefix}{PID}-{anything}`.
fn pid_of(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let digits = rest.split('-').next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Removes the entries of `dir` named `{prefix}{PID}[-...]` whose process is dead (this
/// process's own are kept); returns how many went. Errors are ignored: cleaning is best effort
/// and must never stop the run that does it.
pub fn remove_stale(dir: &Path, prefix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| pid_of(n, prefix)) else { continue };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        let path = entry.path();
        // The entry itself, never a symlink's target.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let gone = if is_dir { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        if gone.is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Prefixes of the worker's scratch folders in the temp dir: `radsam-job-<PID>-<random>` (a job's
/// downloads and outputs), `radsam-weights-<PID>-<random>` (a model's weights being fetched).
pub const JOB_SCRATCH_PREFIX: &str = "radsam-job-";
pub const WEIGHTS_SCRATCH_PREFIX: &str = "radsam-weights-";

/// A scratch folder in the temp dir named `{prefix}{PID}-<random suffix>` (this process's PID), so that a
/// later process can remove it if this one is killed ([`remove_stale_scratch`]). Removed on drop.
pub fn scratch_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(&format!("{prefix}{}-", std::process::id())).tempdir()
}

/// Removes the `{prefix}{PID}-*` scratch folders of dead processes from the temp dir (a worker
/// calls it at start for each prefix it uses); returns how many went.
pub fn remove_stale_scratch(prefix: &str) -> usize {
    remove_stale(&std::env::temp_dir(), prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PID that is certainly dead: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn names_parse_and_only_dead_processes_lose_their_folders() {
        assert_eq!(pid_of(".out.partial-123", ".out.partial-"), Some(123));
        assert_eq!(pid_of("radsam-job-77-AbC", "radsam-job-"), Some(77));
        assert_eq!(pid_of("radsam-job-x1", "radsam-job-"), None);
        assert_eq!(pid_of(".outer.partial-5", ".out.partial-"), None);
        assert!(pid_alive(std::process::id()));
        let dead = dead_pid();
        assert!(!pid_alive(dead));

        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(format!(".out.partial-{dead}"));
        std::fs::create_dir_all(stale.join("sub")).unwrap();
        std::fs::write(stale.join("sub/x"), b"x").unwrap();
        let mine = dir.path().join(format!(".out.partial-{}", std::process::id()));
        std::fs::create_dir(&mine).unwrap();
        let other = dir.path().join(format!(".other.partial-{dead}"));
        std::fs::create_dir(&other).unwrap();
        assert_eq!(remove_stale(dir.path(), ".out.partial-"), 1);
        assert!(!stale.exists() && mine.exists() && other.exists());
    }

    #[test]
    fn scratch_folders_carry_the_pid_and_outlive_only_live_processes() {
        let prefix = format!("radsam-scratch-test-{}-", std::process::id());
        let mine = scratch_dir(&prefix).unwrap();
        let name = mine.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with(&format!("{prefix}{}-", std::process::id())), "{name}");
        // A folder left by a killed worker (its PID dead) goes; this process's stays.
        let dead = std::env::temp_dir().join(format!("{prefix}{}-abc123", dead_pid()));
        std::fs::create_dir_all(dead.join("volume")).unwrap();
        assert_eq!(remove_stale_scratch(&prefix), 1);
        assert!(!dead.exists() && mine.path().exists());
    }
}
