//! SQLGuard layer 2: a tiny learned classifier that reads the normalised value as hashed
//! byte n-grams, for what the layer-1 fingerprints do not know. Layer 1 is precise on attack
//! shapes it has rules for; layer 2 generalises to spellings and families the rules miss, and
//! [`combine`] lets it raise or lower layer 1 only where layer 1 is unsure.
//!
//! * [`features`]: the feature hashing, shared by training and inference.
//! * [`model`]: [`Classifier`], loaded with candle from safetensors and run as plain loops.
//! * [`train`]: the candle training code behind the `sentinel-train` binary.
//! * [`combine`]: how layer 1 and layer 2 make one confidence.
//!
//! The shipped weights (`sentinel/models/sqlguard-v1.safetensors`, with a JSON sidecar of how
//! they were made) are compiled into the binary, so nothing is read from disk at run time;
//! they are parsed once, by [`Classifier::embedded`].

pub mod combine;
pub mod features;
pub mod model;
pub mod train;

use std::sync::OnceLock;

pub use combine::{Layers, Thresholds, combine, combine_with};
pub use features::FeatureParams;
pub use model::Classifier;

/// The shipped weights.
pub static EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../../../models/sqlguard-v1.safetensors");
/// Metadata of the shipped weights (seed, hashing parameters, metrics), as JSON.
pub static EMBEDDED_METADATA: &str = include_str!("../../../models/sqlguard-v1.json");
/// Model version, as in the file name.
pub const MODEL_VERSION: &str = "sqlguard-v1";

/// Why layer 2 could not be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MlError {
    /// The weights file is unreadable or not the model this build expects.
    #[error(
        "SQLGuard layer-2 weights are invalid: {0}; retrain with `cargo run -p magmobo-sentinel --release --bin sentinel-train`"
    )]
    Weights(String),
    /// The weights were trained with other feature hashing than this build uses.
    #[error(
        "SQLGuard layer-2 weights were trained with feature parameters {trained:?} but this build hashes with {current:?}; retrain with `cargo run -p magmobo-sentinel --release --bin sentinel-train`"
    )]
    FeatureMismatch {
        /// Stored in the weights.
        trained: FeatureParams,
        /// This build's.
        current: FeatureParams,
    },
    /// Training failed (a tensor operation returned an error).
    #[error("training the SQLGuard classifier failed: {0}")]
    Training(String),
}

static EMBEDDED: OnceLock<Result<Classifier, MlError>> = OnceLock::new();

impl Classifier {
    /// The compiled-in model, parsed on first use and shared afterwards. Call it at boot so a
    /// bad weights file is a boot error.
    pub fn embedded() -> Result<&'static Classifier, MlError> {
        EMBEDDED
            .get_or_init(|| Classifier::from_safetensors(EMBEDDED_WEIGHTS))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// The compiled-in model, or `None` (logged once) if it does not load.
pub(crate) fn embedded_or_log() -> Option<&'static Classifier> {
    static LOGGED: std::sync::Once = std::sync::Once::new();
    match Classifier::embedded() {
        Ok(m) => Some(m),
        Err(e) => {
            LOGGED.call_once(|| {
                tracing::error!(error = %e, "SQLGuard layer 2 disabled, running layer 1 alone");
            });
            None
        }
    }
}
