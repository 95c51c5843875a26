//! Progress on a terminal: an indicatif bar on standard error, only when it is a TTY and
//! neither `--json` nor `--quiet` is given. Warnings are always printed to standard error.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_store::Progress;
use indicatif::{ProgressBar, ProgressStyle};

pub struct Terminal {
    bar: Option<ProgressBar>,
    files: AtomicU64,
}

impl Terminal {
    pub fn new(global: &crate::Global, verb: &str) -> Self {
        let bar = (!global.json && !global.quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} {verb} {{bytes}} ({{binary_bytes_per_sec}}), {{msg}} [{{elapsed}}]"
                ))
                .expect("the template is valid"),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            files: AtomicU64::new(0),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Terminal {
    fn bytes(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    fn file_done(&self) {
        let files = self.files.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{files} files"));
        }
    }

    fn warn(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }
}
