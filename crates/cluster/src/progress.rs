//! kind-style step output on stderr: ` • Step ...` while it runs, ` ✓ Step` when done,
//! ` ✗ Step` if it was dropped without finishing (an error returned early).

use std::io::{IsTerminal, Write};

pub struct Step {
    title: &'static str,
    tty: bool,
    finished: bool,
}

impl Step {
    pub fn start(title: &'static str) -> Step {
        let tty = std::io::stderr().is_terminal();
        let mut err = std::io::stderr();
        if tty {
            // Stays on one line; `finish` overwrites it.
            let _ = write!(err, " • {title} ...");
        } else {
            let _ = writeln!(err, " • {title} ...");
        }
        let _ = err.flush();
        Step {
            title,
            tty,
            finished: false,
        }
    }

    pub fn done(mut self) {
        self.finish('✓');
    }

    fn finish(&mut self, mark: char) {
        self.finished = true;
        let prefix = if self.tty { "\r\x1b[K" } else { "" };
        eprintln!("{prefix} {mark} {}", self.title);
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if !self.finished {
            self.finish('✗');
        }
    }
}
