//! The layer-2 model: hashed n-gram counts → [`HIDDEN`] ReLU units → one logit.
//!
//! Weights are read with candle from safetensors once, at boot, and then kept as plain `f32`
//! vectors: the input is sparse (a value touches a few hundred of 4096 buckets), so inference
//! adds one [`HIDDEN`]-wide row of the first layer per n-gram instead of multiplying a dense
//! 4096-vector, and runs without tensor allocation. A candle forward pass of the same model
//! costs tens of microseconds per value (see docs/sentinel.md, "SQLGuard evaluation"), the
//! whole budget of the check many times over; the loops below cost well under one.

use candle_core::{DType, Device, Tensor};

use super::MlError;
use super::features::{self, BUCKETS, FeatureParams};

/// Width of the hidden layer.
pub const HIDDEN: usize = 16;

/// Tensor names in the weights file.
pub mod names {
    /// `[BUCKETS, HIDDEN]` f32: first layer, one row per bucket.
    pub const W1: &str = "w1";
    /// `[HIDDEN]` f32.
    pub const B1: &str = "b1";
    /// `[HIDDEN]` f32: output layer.
    pub const W2: &str = "w2";
    /// `[1]` f32.
    pub const B2: &str = "b2";
    /// `[6]` u32: the [`FeatureParams`](super::FeatureParams) the weights were trained with.
    pub const PARAMS: &str = "feature_params";
}

/// A loaded classifier. Immutable and `Sync`: one instance serves every request.
#[derive(Clone, Debug)]
pub struct Classifier {
    w1: Vec<f32>,
    b1: [f32; HIDDEN],
    w2: [f32; HIDDEN],
    b2: f32,
}

impl Classifier {
    /// Reads weights from safetensors bytes, checking names, shapes, finiteness and that the
    /// feature hashing they were trained with is the one this build uses.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Classifier, MlError> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| MlError::Weights(format!("not a readable safetensors file: {e}")))?;
        let get = |name: &str| {
            tensors
                .get(name)
                .ok_or_else(|| MlError::Weights(format!("tensor `{name}` is missing")))
        };
        let params_t = get(names::PARAMS)?;
        let params = read_vec::<u32>(params_t, names::PARAMS, DType::U32, &[6])?;
        let trained = FeatureParams::from_slice(&params)
            .ok_or_else(|| MlError::Weights("feature_params has the wrong length".into()))?;
        if trained != FeatureParams::CURRENT {
            return Err(MlError::FeatureMismatch {
                trained,
                current: FeatureParams::CURRENT,
            });
        }
        let w1 = read_vec::<f32>(get(names::W1)?, names::W1, DType::F32, &[BUCKETS, HIDDEN])?;
        let b1 = read_vec::<f32>(get(names::B1)?, names::B1, DType::F32, &[HIDDEN])?;
        let w2 = read_vec::<f32>(get(names::W2)?, names::W2, DType::F32, &[HIDDEN])?;
        let b2 = read_vec::<f32>(get(names::B2)?, names::B2, DType::F32, &[1])?;
        let all = w1.iter().chain(&b1).chain(&w2).chain(&b2);
        if all.clone().any(|x| !x.is_finite()) {
            return Err(MlError::Weights("weights contain NaN or infinity".into()));
        }
        Ok(Classifier {
            w1,
            b1: to_array(&b1),
            w2: to_array(&w2),
            b2: b2.first().copied().unwrap_or_default(),
        })
    }

    /// The logit (log-odds of "attack") of an already [normalised](super::super::normalize)
    /// value.
    pub fn logit(&self, normalized: &str) -> f32 {
        let mut acc = [0.0f32; HIDDEN];
        let count = features::for_each_bucket(normalized, |b| {
            if let Some(row) = self.w1.get(b * HIDDEN..(b + 1) * HIDDEN) {
                for (a, w) in acc.iter_mut().zip(row) {
                    *a += w;
                }
            }
        });
        let s = features::scale(count);
        let mut z = self.b2;
        for ((a, b), w) in acc.iter().zip(&self.b1).zip(&self.w2) {
            z += (a * s + b).max(0.0) * w;
        }
        z
    }

    /// Probability in 0..1 that a normalised value is an injection.
    pub fn probability(&self, normalized: &str) -> f32 {
        sigmoid(self.logit(normalized))
    }
}

/// The logistic function.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

fn to_array(v: &[f32]) -> [f32; HIDDEN] {
    let mut out = [0.0; HIDDEN];
    for (o, x) in out.iter_mut().zip(v) {
        *o = *x;
    }
    out
}

fn read_vec<T: candle_core::WithDType>(
    t: &Tensor,
    name: &str,
    dtype: DType,
    shape: &[usize],
) -> Result<Vec<T>, MlError> {
    if t.dtype() != dtype || t.dims() != shape {
        return Err(MlError::Weights(format!(
            "tensor `{name}` is {:?} {:?}, expected {dtype:?} {shape:?}",
            t.dtype(),
            t.dims()
        )));
    }
    t.flatten_all()
        .and_then(|t| t.to_vec1::<T>())
        .map_err(|e| MlError::Weights(format!("tensor `{name}`: {e}")))
}
