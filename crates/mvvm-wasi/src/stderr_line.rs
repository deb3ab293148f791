//! Whether the guest left the host's stderr in the middle of a line.
//!
//! The tools print their own lines on the same stderr ("checkpoint written
//! to ..."): a guest that wrote `progress: 41%` without a newline before a
//! checkpoint would otherwise have the tool's message glued to its text.
//! The guest's writes to descriptor 2 go straight to the host's descriptor,
//! so the only place that sees their last byte is `fd_write`, which records
//! it here; the tools ask [`take_stderr_mid_line`] before printing.
//!
//! One flag per process: there is one host stderr.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a stream's last byte was not a newline.
struct MidLine(AtomicBool);

impl MidLine {
    fn note(&self, written: &[u8]) {
        if let Some(&last) = written.last() {
            self.0.store(last != b'\n', Ordering::Relaxed);
        }
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

static STDERR: MidLine = MidLine(AtomicBool::new(false));

/// Records the bytes a guest just wrote to the host's stderr.
pub(crate) fn note_stderr_write(written: &[u8]) {
    STDERR.note(written);
}

/// Whether the guest's last write to stderr did not end with a newline;
/// clears the flag, since the caller is about to print a whole line (after
/// a newline of its own when this returns `true`).
pub fn take_stderr_mid_line() -> bool {
    STDERR.take()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a state of its own: other tests write to the real stderr.
    #[test]
    fn the_last_byte_decides() {
        let line = MidLine(AtomicBool::new(false));
        assert!(!line.take());
        line.note(b"progress: 41%");
        line.note(b"");
        assert!(line.take(), "an empty write changes nothing");
        assert!(!line.take(), "taking the flag clears it");
        line.note(b"half\nline\n");
        assert!(!line.take());
    }
}
