//! What every error with a stable code shares. Each module keeps its own error enum (the codes
//! of a volume are the volume reader's business); this trait is how the rest of the project
//! reads them: the CLI prints `[CODE] message`, the worker stores the code in PostgreSQL and
//! decides from `is_transient` whether a retry may help.

/// An error with a stable, machine-readable code (`VOLUME_TOO_LARGE`, `JOB_MALFORMED`, ...).
pub trait Coded: std::fmt::Display {
    /// The stable code: never reworded, since logs, tests and PostgreSQL rows match on it.
    fn code(&self) -> &'static str;

    /// True when trying again later may succeed (a store or database that is down); the
    /// default, false, is right for anything wrong with the input itself.
    fn is_transient(&self) -> bool {
        false
    }
}

/// The one adapter from a coded error to `anyhow`, as the binaries print it: `[CODE] message`.
pub fn with_code<E: Coded>(e: E) -> anyhow::Error {
    anyhow::anyhow!("[{}] {e}", e.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Down;
    impl std::fmt::Display for Down {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the store is down")
        }
    }
    impl Coded for Down {
        fn code(&self) -> &'static str {
            "STORE_DOWN"
        }
    }

    #[test]
    fn the_adapter_prints_the_code_before_the_message_and_input_errors_are_not_transient() {
        assert_eq!(with_code(Down).to_string(), "[STORE_DOWN] the store is down");
        assert!(!Down.is_transient());
        let e = crate::volume::VolumeError::NotFound { path: "x.nii".into() };
        assert_eq!(with_code(e).to_string(), "[VOLUME_NOT_FOUND] x.nii: not found");
    }
}
