//! Text that came from outside (a message body, a field of an invalid job, an error message
//! quoting either) on its way into a log line or a PostgreSQL text column. Valid jobs never hold
//! control characters (schema.rs refuses them); these two cover everything else.

/// For a log line: control characters escaped (a newline cannot start a forged line, an escape
/// sequence cannot recolour a terminal) and at most about `max_bytes` kept, the cut said.
pub fn printable(s: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_bytes) + 24);
    for c in s.chars() {
        if out.len() >= max_bytes {
            out.push_str(&format!("... ({} bytes in all)", s.len()));
            return out;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// For a PostgreSQL text column: NUL (which text cannot hold) written as the six characters
/// `\u0000`, at most about `max_bytes` kept, the cut said. Other characters stay as they were.
pub fn storable(s: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_bytes) + 24);
    for c in s.chars() {
        if out.len() >= max_bytes {
            out.push_str(&format!("... ({} bytes in all)", s.len()));
            return out;
        }
        if c == '\0' {
            out.push_str("\\u0000");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_cut() {
        assert_eq!(printable("study-1", 100), "study-1");
        assert_eq!(printable("a\nINFO forged line\u{1b}[31m", 100), "a\\nINFO forged line\\u{1b}[31m");
        assert_eq!(printable("x\0y", 100), "x\\u{0}y");
        assert_eq!(printable("étude ✓", 100), "étude ✓");
        let cut = printable(&"z".repeat(10_000), 64);
        assert!(cut.starts_with(&"z".repeat(64)) && cut.ends_with("(10000 bytes in all)") && cut.len() < 100, "{cut}");
        assert_eq!(storable("a\0b\nc", 100), "a\\u0000b\nc");
        assert!(!storable(&"\0".repeat(1000), 50).contains('\0'));
        assert!(storable(&"é".repeat(1000), 51).ends_with("(2000 bytes in all)"), "cut on a character boundary");
    }
}
