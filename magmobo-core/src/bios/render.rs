//! Renders a [`BootReport`] as the POST screen.

use std::fmt::Write;

use super::report::{BootReport, LineStatus, MountLine, Outcome, StepLine};

/// How to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderStyle {
    /// ANSI colours, for a terminal.
    Color,
    /// No escape codes, for pipes and logs.
    Plain,
    /// One pretty JSON document.
    Json,
}

impl RenderStyle {
    /// Colour when `stream` is a terminal and `NO_COLOR` is unset, plain otherwise.
    pub fn detect(stream: &impl std::io::IsTerminal) -> Self {
        if stream.is_terminal() && std::env::var_os("NO_COLOR").is_none() {
            RenderStyle::Color
        } else {
            RenderStyle::Plain
        }
    }
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn mark(&self, status: LineStatus) -> String {
        match status {
            LineStatus::Ok => self.wrap("32", "✓"),
            LineStatus::Failed => self.wrap("31", "✗"),
            LineStatus::Skipped => self.wrap("33", "-"),
            LineStatus::Empty => self.wrap("2", "·"),
        }
    }
    fn dim(&self, text: &str) -> String {
        self.wrap("2", text)
    }
    fn bold(&self, text: &str) -> String {
        self.wrap("1", text)
    }
}

fn ms(micros: u64) -> String {
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 10_000 {
        format!("{:.1}ms", micros as f64 / 1000.0)
    } else {
        format!("{}ms", micros / 1000)
    }
}

/// Renders the report in the given style.
pub fn render(report: &BootReport, style: RenderStyle) -> String {
    if style == RenderStyle::Json {
        return serde_json::to_string_pretty(report).unwrap_or_default();
    }
    let p = Paint(style == RenderStyle::Color);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        p.bold(&format!("MagMoBo BIOS v{}", report.bios_version))
    );
    let _ = writeln!(out, "Performing Power-On Self Test (POST)...\n");
    for line in &report.post {
        let what = match (&line.component, line.status) {
            (None, LineStatus::Empty) => format!("{} slot empty", line.slot),
            (None, _) => format!("{} missing: {}", line.slot, line.detail),
            (Some(name), LineStatus::Failed) => {
                format!("{} failed: {name} ({})", line.slot, line.detail)
            }
            (Some(name), _) if line.detail.is_empty() => format!("{} detected: {name}", line.slot),
            (Some(name), _) => format!("{} detected: {name} ({})", line.slot, line.detail),
        };
        let _ = writeln!(out, "{} {what}", p.mark(line.status));
    }
    let post_ok = report.post.iter().all(|l| l.status != LineStatus::Failed)
        && !matches!(&report.outcome, Outcome::Failed(f) if report.steps.is_empty() && f.code == super::PostCode::MissingComponent);
    if post_ok {
        let _ = writeln!(out, "\nPOST complete. All components operational.");
    } else {
        let _ = writeln!(out, "\nPOST failed.");
    }
    // Listening is the last step of a boot, so it is shown after the mounts.
    let (listen, steps): (Vec<_>, Vec<_>) = report.steps.iter().partition(|s| s.name == "listen");
    for step in steps {
        step_line(&mut out, &p, step);
    }
    mount_section(
        &mut out,
        &p,
        "Mounting PCIe extensions...",
        "Slot",
        &report.extensions,
    );
    mount_section(
        &mut out,
        &p,
        "Connecting USB peripherals...",
        "Port",
        &report.peripherals,
    );
    if !report.patrols.is_empty() {
        let _ = writeln!(out, "Initializing patrol agents...");
        let agents: Vec<String> = report
            .patrols
            .iter()
            .map(|a| match &a.detail {
                Some(d) if a.status == LineStatus::Failed => {
                    format!("{} {} ({d})", p.mark(a.status), a.title)
                }
                _ => format!("{} {}", p.mark(a.status), a.title),
            })
            .collect();
        let _ = writeln!(out, "  {}", agents.join("  "));
    }
    for step in listen {
        step_line(&mut out, &p, step);
    }
    match &report.outcome {
        Outcome::Failed(f) => {
            let _ = writeln!(
                out,
                "\n{} {}: {}",
                p.wrap("31;1", f.code.as_str()),
                f.part,
                f.message
            );
            let _ = writeln!(out, "  next: {}", f.hint);
        }
        _ if report.post_only => {
            let _ = writeln!(out, "Self-test only: nothing was started.");
        }
        outcome => {
            if let Outcome::Degraded { failed } = outcome {
                let _ = writeln!(
                    out,
                    "{}",
                    p.wrap(
                        "33",
                        &format!(
                            "Degraded: {} did not come up; see above.",
                            failed.join(", ")
                        )
                    )
                );
            }
            let listening = match &report.listening {
                Some(addr) => format!(" Listening on {addr}"),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "{}{}",
                p.bold(&format!("{} started.", report.board)),
                listening
            );
            let _ = writeln!(
                out,
                "{}",
                p.dim(&format!("boot took {}", ms(report.micros)))
            );
        }
    }
    out
}

fn step_line(out: &mut String, p: &Paint, step: &StepLine) {
    match step.status {
        LineStatus::Ok => {
            let _ = writeln!(out, "→ {}... done ({})", step.name, ms(step.micros));
        }
        _ => {
            let error = step.error.as_deref().unwrap_or("failed");
            let _ = writeln!(
                out,
                "→ {}... {} {error}",
                step.name,
                p.wrap("31", "FAILED:")
            );
        }
    }
}

fn mount_section(out: &mut String, p: &Paint, heading: &str, kind: &str, lines: &[MountLine]) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "{heading}");
    for line in lines {
        let label = format!("{kind} {}: {} v{}", line.index, line.title, line.version);
        let detail = match (line.status, &line.detail) {
            (LineStatus::Ok, Some(d)) => format!(" {d}"),
            (LineStatus::Ok, None) => String::new(),
            (LineStatus::Failed, d) => {
                let why = d.as_deref().unwrap_or("failed");
                let tail = if line.required {
                    ""
                } else {
                    " (optional; continuing without it)"
                };
                format!(" {}{tail}", p.wrap("31", &format!("failed: {why}")))
            }
            (_, d) => format!(" skipped: {}", d.as_deref().unwrap_or("")),
        };
        let _ = writeln!(out, "  {label}  {}{detail}", p.mark(line.status));
    }
}
