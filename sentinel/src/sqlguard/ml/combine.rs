//! How layer 1's score and layer 2's probability make one confidence.
//!
//! Layer 1 is trusted where it is sure and the model only moves borderline values:
//!
//! * **Layer 1 confident** (score ≥ `sure`): kept; the model can only raise it, by at most
//!   `boost`, when it agrees (probability ≥ `agree`).
//! * **Layer 1 hit but borderline** (0.5 ≤ score < `sure`): the model confirms (kept, or
//!   raised) or, when it is sure the value is benign (probability < `veto`), lowers it just
//!   under the attack threshold.
//! * **Breakout without a known shape** (layer 1 gated the value but scored it under 0.5):
//!   an attack if the model says so (probability ≥ `gated_attack`), with confidence from
//!   0.5 to 0.9 as the probability rises, so a sure model blocks.
//! * **No breakout at all**: an attack only if the model is nearly certain (probability ≥
//!   `free_attack`), and then at most 0.75: logged and alerted, never blocked on the model
//!   alone, because a value that breaks out of no literal needs a very strange query to hurt.
//!
//! The cut-offs are [`Thresholds::DEFAULT`].

use crate::sqlguard::ATTACK_THRESHOLD;

/// The cut-offs of [`combine`]; [`Thresholds::DEFAULT`] is what SQLGuard uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Layer-1 score from which the model cannot lower it.
    pub sure: f32,
    /// Probability from which the model agrees with a layer-1 hit.
    pub agree: f32,
    /// Most the model adds to a layer-1 hit.
    pub boost: f32,
    /// Probability under which the model vetoes a borderline layer-1 hit.
    pub veto: f32,
    /// Probability from which a gated value without a known shape is an attack.
    pub gated_attack: f32,
    /// Probability from which a value that never breaks out is an attack.
    pub free_attack: f32,
}

impl Thresholds {
    /// The shipped cut-offs (chosen in docs/sentinel.md, "SQLGuard evaluation").
    pub const DEFAULT: Thresholds = Thresholds {
        sure: 0.9,
        agree: 0.9,
        boost: 0.05,
        veto: 0.05,
        gated_attack: 0.9,
        free_attack: 0.995,
    };
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::DEFAULT
    }
}

/// What each layer said about one value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Layers {
    /// Layer-1 score of the best gated context; 0 when no context breaks out.
    pub layer1: f32,
    /// Whether any context broke out of its literal (layer 1's gate).
    pub gated: bool,
    /// Layer-2 probability of an attack.
    pub layer2: f32,
}

/// The combined confidence in 0..1 (an attack from [`ATTACK_THRESHOLD`]), with the shipped
/// [`Thresholds`].
pub fn combine(l: Layers) -> f32 {
    combine_with(l, &Thresholds::DEFAULT)
}

/// [`combine`] with other cut-offs (the training program sweeps them).
pub fn combine_with(l: Layers, t: &Thresholds) -> f32 {
    let p = l.layer2;
    let ramp = |from: f32, width: f32| {
        ATTACK_THRESHOLD + width * ((p - from) / (1.0 - from).max(f32::EPSILON)).clamp(0.0, 1.0)
    };
    let c = if l.layer1 >= t.sure {
        if p >= t.agree {
            l.layer1 + t.boost * p
        } else {
            l.layer1
        }
    } else if l.layer1 >= ATTACK_THRESHOLD {
        if p >= t.agree {
            l.layer1 + t.boost * p
        } else if p < t.veto {
            ATTACK_THRESHOLD - 0.01
        } else {
            l.layer1
        }
    } else if l.gated && p >= t.gated_attack {
        ramp(t.gated_attack, 0.4)
    } else if p >= t.free_attack {
        ramp(t.free_attack, 0.25)
    } else {
        l.layer1
    };
    c.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(layer1: f32, gated: bool, layer2: f32) -> f32 {
        combine(Layers {
            layer1,
            gated,
            layer2,
        })
    }

    #[test]
    fn sure_layer1_is_never_lowered() {
        assert_eq!(c(0.95, true, 0.0), 0.95);
        assert!(c(0.95, true, 1.0) > 0.95);
    }

    #[test]
    fn borderline_hits_follow_the_model() {
        assert!(c(0.6, true, 0.001) < ATTACK_THRESHOLD);
        assert!(c(0.85, true, 0.001) < ATTACK_THRESHOLD);
        assert!(c(0.6, true, 0.5) >= ATTACK_THRESHOLD);
        assert!(c(0.6, true, 0.99) > 0.6);
    }

    #[test]
    fn model_alone_flags_but_never_blocks() {
        assert!(c(0.0, false, 0.99) < ATTACK_THRESHOLD);
        let alone = c(0.0, false, 1.0);
        assert!((ATTACK_THRESHOLD..0.85).contains(&alone));
        let gated = c(0.3, true, 1.0);
        assert!(gated >= 0.85);
        assert_eq!(c(0.3, true, 0.5), 0.3);
    }
}
