//! Progress on stderr: one live line per step on a terminal (indicatif), plain timestamped lines
//! otherwise (CI logs). Results never go here; they go to stdout.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use time::OffsetDateTime;

/// Receives what the engine and steps are doing.
pub trait Progress: Send + Sync {
    /// A step began `what` ("checking", "creating", "deleting").
    fn started(&self, step: &str, what: &str);
    /// Something worth telling while a step runs (an AWS event, a wait).
    fn note(&self, step: &str, msg: &str);
    /// A step finished; `summary` says what it did or that nothing changed.
    fn finished(&self, step: &str, summary: &str, elapsed: Duration);
    fn failed(&self, step: &str, error: &str);
    /// A line that belongs to no step.
    fn message(&self, msg: &str);
}

/// Picks the terminal renderer when stderr is a terminal, else plain lines.
pub fn for_stderr(color: bool, verbose: u8) -> std::sync::Arc<dyn Progress> {
    if console::Term::stderr().is_term() {
        std::sync::Arc::new(TerminalProgress::new(color))
    } else {
        std::sync::Arc::new(PlainProgress { verbose })
    }
}

/// Timestamped lines, one per event, for logs and pipelines.
pub struct PlainProgress {
    verbose: u8,
}

impl PlainProgress {
    fn line(&self, step: &str, msg: &str) {
        let now = OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let mut err = std::io::stderr().lock();
        let _ = if step.is_empty() {
            writeln!(err, "{stamp} {msg}")
        } else {
            writeln!(err, "{stamp} [{step}] {msg}")
        };
    }
}

impl Progress for PlainProgress {
    fn started(&self, step: &str, what: &str) {
        if self.verbose > 0 {
            self.line(step, &format!("{what}…"));
        }
    }
    fn note(&self, step: &str, msg: &str) {
        self.line(step, msg);
    }
    fn finished(&self, step: &str, summary: &str, elapsed: Duration) {
        self.line(step, &format!("{summary} ({:.1}s)", elapsed.as_secs_f64()));
    }
    fn failed(&self, step: &str, error: &str) {
        self.line(step, &format!("FAILED: {error}"));
    }
    fn message(&self, msg: &str) {
        self.line("", msg);
    }
}

/// A spinner per step that turns into ✓ or ✗ with the result.
pub struct TerminalProgress {
    bars: MultiProgress,
    lines: Mutex<HashMap<String, ProgressBar>>,
    color: bool,
}

impl TerminalProgress {
    fn new(color: bool) -> Self {
        Self {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            lines: Mutex::new(HashMap::new()),
            color,
        }
    }

    fn bar(&self, step: &str) -> ProgressBar {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .entry(step.to_string())
            .or_insert_with(|| {
                let bar = self.bars.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<16} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(step.to_string());
                bar.enable_steady_tick(Duration::from_millis(100));
                bar
            })
            .clone()
    }

    fn paint(&self, text: &str, style: console::Style) -> String {
        if self.color {
            style.apply_to(text).to_string()
        } else {
            text.to_string()
        }
    }
}

impl Progress for TerminalProgress {
    fn started(&self, step: &str, what: &str) {
        self.bar(step).set_message(format!("{what}…"));
    }
    fn note(&self, step: &str, msg: &str) {
        let bar = self.bar(step);
        bar.println(format!("  {step}: {msg}"));
    }
    fn finished(&self, step: &str, summary: &str, elapsed: Duration) {
        let tick = self.paint("✓", console::Style::new().green());
        // One screen line per step: the full detail is in the result and in plain mode.
        let room = usize::from(console::Term::stderr().size().1).saturating_sub(32);
        let summary = console::truncate_str(summary, room.max(20), "…");
        self.bar(step)
            .finish_with_message(format!("{tick} {summary} ({:.1}s)", elapsed.as_secs_f64()));
    }
    fn failed(&self, step: &str, error: &str) {
        let cross = self.paint("✗", console::Style::new().red());
        self.bar(step)
            .finish_with_message(format!("{cross} {error}"));
    }
    fn message(&self, msg: &str) {
        let _ = self.bars.println(msg);
    }
}
