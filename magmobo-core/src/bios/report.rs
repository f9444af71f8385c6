//! The boot report: a value describing every line of the POST screen.

use std::time::Duration;

use serde::Serialize;

use super::PostCode;
use crate::slot::Slot;

/// State of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LineStatus {
    /// Worked.
    Ok,
    /// Failed; for optional parts the boot goes on.
    Failed,
    /// Not attempted because something it depends on failed.
    Skipped,
    /// Slot left empty (not required).
    Empty,
}

/// One slot detected (or not) during POST.
#[derive(Debug, Clone, Serialize)]
pub struct PostLine {
    /// The slot.
    pub slot: Slot,
    /// Outcome.
    pub status: LineStatus,
    /// Component name, if the slot is occupied.
    pub component: Option<String>,
    /// Component version.
    pub version: Option<String>,
    /// Self-test detail, or the error.
    pub detail: String,
    /// Self-test time in microseconds.
    pub micros: u64,
}

/// One timed initialisation step.
#[derive(Debug, Clone, Serialize)]
pub struct StepLine {
    /// Step name, e.g. `init_storage`.
    pub name: String,
    /// Outcome.
    pub status: LineStatus,
    /// Time in microseconds.
    pub micros: u64,
    /// Error, when failed.
    pub error: Option<String>,
}

/// One extension, peripheral or patrol agent brought up.
#[derive(Debug, Clone, Serialize)]
pub struct MountLine {
    /// Slot or port number, from 1.
    pub index: usize,
    /// Unique name.
    pub name: String,
    /// Display title.
    pub title: String,
    /// Version.
    pub version: String,
    /// Outcome.
    pub status: LineStatus,
    /// Whether the boot fails when this part fails.
    pub required: bool,
    /// Summary when ok, error when failed.
    pub detail: Option<String>,
    /// Time in microseconds.
    pub micros: u64,
}

/// Why a boot stopped.
#[derive(Debug, Clone, Serialize)]
pub struct BootFailure {
    /// Stable code.
    pub code: PostCode,
    /// The part at fault.
    pub part: String,
    /// What went wrong.
    pub message: String,
    /// What to do next.
    pub hint: String,
}

/// How the boot ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum Outcome {
    /// Everything came up.
    Ready,
    /// Up, but some optional parts failed.
    Degraded {
        /// Names of the parts that failed.
        failed: Vec<String>,
    },
    /// The boot stopped.
    Failed(BootFailure),
}

/// Everything a boot did, in order. Render it with [`super::render`].
#[derive(Debug, Clone, Serialize)]
pub struct BootReport {
    /// BIOS version.
    pub bios_version: String,
    /// Board name (e.g. `MagFlock`).
    pub board: String,
    /// POST lines, one per slot.
    pub post: Vec<PostLine>,
    /// Initialisation steps.
    pub steps: Vec<StepLine>,
    /// Extensions.
    pub extensions: Vec<MountLine>,
    /// Peripherals.
    pub peripherals: Vec<MountLine>,
    /// Patrol agents.
    pub patrols: Vec<MountLine>,
    /// `http://addr` once listening.
    pub listening: Option<String>,
    /// Total boot time in microseconds.
    pub micros: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// True for a self-test run (`Motherboard::self_test`): nothing was started.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub post_only: bool,
}

impl BootReport {
    pub(crate) fn new(board: &str) -> Self {
        BootReport {
            bios_version: super::BIOS_VERSION.to_owned(),
            board: board.to_owned(),
            post: Vec::new(),
            steps: Vec::new(),
            extensions: Vec::new(),
            peripherals: Vec::new(),
            patrols: Vec::new(),
            listening: None,
            micros: 0,
            outcome: Outcome::Ready,
            post_only: false,
        }
    }

    /// True unless the boot stopped.
    pub fn is_up(&self) -> bool {
        !matches!(self.outcome, Outcome::Failed(_))
    }

    /// The failure, if the boot stopped.
    pub fn failure(&self) -> Option<&BootFailure> {
        match &self.outcome {
            Outcome::Failed(f) => Some(f),
            _ => None,
        }
    }

    /// One line describing the failure: code, part, message and hint.
    pub fn failure_line(&self) -> String {
        match self.failure() {
            Some(f) => format!("{} {}: {}. Next: {}", f.code, f.part, f.message, f.hint),
            None => "boot succeeded".to_owned(),
        }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    pub(crate) fn fail(&mut self, code: PostCode, part: &str, message: String) {
        self.outcome = Outcome::Failed(BootFailure {
            code,
            part: part.to_owned(),
            message,
            hint: code.hint().to_owned(),
        });
    }

    pub(crate) fn note_optional_failure(&mut self, name: &str) {
        match &mut self.outcome {
            Outcome::Ready => {
                self.outcome = Outcome::Degraded {
                    failed: vec![name.to_owned()],
                }
            }
            Outcome::Degraded { failed } => failed.push(name.to_owned()),
            Outcome::Failed(_) => {}
        }
    }
}

pub(crate) fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}
