//! Training of the layer-2 model with candle on the CPU: dense hashed feature batches, the
//! same MLP as [`Classifier`](super::Classifier) written as tensor operations, binary
//! cross-entropy, and Adam written out over candle's autograd (candle-nn would bring a second
//! crate for one optimiser).
//!
//! Everything random (initial weights, batch order) comes from a seeded ChaCha8 stream, so one
//! seed gives one model; threaded matrix products may still differ in the last float bits
//! between machines. The `sentinel-train` binary drives this and writes the weights; the
//! tests use [`forward`] and [`dense_batch`] to check that the tensor model and the plain-Rust
//! inference agree.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::MlError;
use super::features::{self, BUCKETS, FeatureParams};
use super::model::{HIDDEN, names};

/// Knobs of one training run.
#[derive(Clone, Copy, Debug)]
pub struct TrainConfig {
    /// Seed of initialisation and batch order.
    pub seed: u64,
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per gradient step.
    pub batch: usize,
    /// Adam step size.
    pub learning_rate: f64,
    /// Loss weight of a benign sample relative to an attack: above 1 trades detection for
    /// fewer false positives, which is what the 0.3% target asks for.
    pub benign_weight: f32,
    /// Decoupled (AdamW) weight decay: keeps rare buckets from carrying large weights that
    /// short values then hit hard.
    pub weight_decay: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 2024,
            epochs: 6,
            batch: 256,
            learning_rate: 3e-3,
            benign_weight: 2.0,
            weight_decay: 1e-3,
        }
    }
}

/// One training example: a normalised value and whether it is an attack.
#[derive(Clone, Debug)]
pub struct Example {
    /// The value after [`normalize`](crate::sqlguard::normalize::normalize).
    pub normalized: String,
    /// Ground truth.
    pub attack: bool,
}

/// The trainable parameters.
#[derive(Debug)]
pub struct Weights {
    /// `[BUCKETS, HIDDEN]`.
    pub w1: Var,
    /// `[HIDDEN]`.
    pub b1: Var,
    /// `[HIDDEN]`.
    pub w2: Var,
    /// `[1]`.
    pub b2: Var,
}

fn err(e: candle_core::Error) -> MlError {
    MlError::Training(e.to_string())
}

impl Weights {
    /// Uniform (Glorot-style) initial weights from `rng`.
    pub fn init(rng: &mut ChaCha8Rng) -> Result<Weights, MlError> {
        let dev = Device::Cpu;
        let mut uniform = |n: usize, a: f32| -> Vec<f32> {
            (0..n)
                .map(|_| rng.random_range(-a..a))
                .collect::<Vec<f32>>()
        };
        let w1 = uniform(BUCKETS * HIDDEN, 0.05);
        let w2 = uniform(HIDDEN, (6.0 / (HIDDEN as f32 + 1.0)).sqrt());
        let var = |v: Vec<f32>, shape: &[usize]| {
            Tensor::from_vec(v, shape, &dev)
                .and_then(|t| Var::from_tensor(&t))
                .map_err(err)
        };
        Ok(Weights {
            w1: var(w1, &[BUCKETS, HIDDEN])?,
            b1: var(vec![0.01; HIDDEN], &[HIDDEN])?,
            w2: var(w2, &[HIDDEN])?,
            b2: var(vec![0.0], &[1])?,
        })
    }

    /// Weights read back from a safetensors file (to check the tensor model against the
    /// plain-Rust inference, or to continue training).
    pub fn from_safetensors(bytes: &[u8]) -> Result<Weights, MlError> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(err)?;
        let var = |name: &str| {
            tensors
                .get(name)
                .ok_or_else(|| MlError::Weights(format!("tensor `{name}` is missing")))
                .and_then(|t| Var::from_tensor(t).map_err(err))
        };
        Ok(Weights {
            w1: var(names::W1)?,
            b1: var(names::B1)?,
            w2: var(names::W2)?,
            b2: var(names::B2)?,
        })
    }

    fn vars(&self) -> [&Var; 4] {
        [&self.w1, &self.b1, &self.w2, &self.b2]
    }

    /// Writes the weights and the feature parameters as safetensors.
    pub fn save(&self, path: &Path) -> Result<(), MlError> {
        let params = Tensor::new(&FeatureParams::CURRENT.to_array(), &Device::Cpu).map_err(err)?;
        let map: HashMap<String, Tensor> = [
            (names::W1, self.w1.as_tensor().clone()),
            (names::B1, self.b1.as_tensor().clone()),
            (names::W2, self.w2.as_tensor().clone()),
            (names::B2, self.b2.as_tensor().clone()),
            (names::PARAMS, params),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        candle_core::safetensors::save(&map, path).map_err(err)
    }
}

/// Logits `[batch]` of a dense feature batch `[batch, BUCKETS]`: the tensor twin of
/// [`Classifier::logit`](super::Classifier::logit).
pub fn forward(x: &Tensor, w: &Weights) -> candle_core::Result<Tensor> {
    let h = x
        .matmul(w.w1.as_tensor())?
        .broadcast_add(w.b1.as_tensor())?
        .relu()?;
    let w2 = w.w2.as_tensor().unsqueeze(1)?;
    h.matmul(&w2)?.squeeze(1)?.broadcast_add(w.b2.as_tensor())
}

/// Dense feature rows `[texts.len(), BUCKETS]` of normalised values.
pub fn dense_batch<S: AsRef<str>>(texts: &[S]) -> candle_core::Result<Tensor> {
    let mut data = vec![0.0f32; texts.len() * BUCKETS];
    for (row, text) in data.chunks_mut(BUCKETS).zip(texts) {
        features::dense_into(text.as_ref(), row);
    }
    Tensor::from_vec(data, (texts.len(), BUCKETS), &Device::Cpu)
}

/// Weighted binary cross-entropy on logits, written to stay finite for large logits.
fn loss(z: &Tensor, y: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    let per = (z.relu()? - z.mul(y)?)?.add(&softplus)?;
    per.mul(weight)?.mean_all()
}

struct Adam {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
    lr: f64,
    decay: f64,
}

impl Adam {
    const B1: f64 = 0.9;
    const B2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    fn new(w: &Weights, lr: f64, decay: f64) -> candle_core::Result<Adam> {
        let zeros = |v: &&Var| v.as_tensor().zeros_like();
        let m = w
            .vars()
            .iter()
            .map(zeros)
            .collect::<candle_core::Result<_>>()?;
        let v = w
            .vars()
            .iter()
            .map(zeros)
            .collect::<candle_core::Result<_>>()?;
        Ok(Adam {
            m,
            v,
            t: 0,
            lr,
            decay,
        })
    }

    fn step(&mut self, w: &Weights, grads: &GradStore) -> candle_core::Result<()> {
        self.t += 1;
        let c1 = 1.0 - Self::B1.powi(self.t);
        let c2 = 1.0 - Self::B2.powi(self.t);
        for (i, var) in w.vars().into_iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            self.m[i] = (self.m[i].affine(Self::B1, 0.0)? + g.affine(1.0 - Self::B1, 0.0)?)?;
            self.v[i] =
                (self.v[i].affine(Self::B2, 0.0)? + g.sqr()?.affine(1.0 - Self::B2, 0.0)?)?;
            let denom = self.v[i]
                .affine(1.0 / c2, 0.0)?
                .sqrt()?
                .affine(1.0, Self::EPS)?;
            let update = self.m[i].affine(self.lr / c1, 0.0)?.div(&denom)?;
            let decayed = var.as_tensor().affine(1.0 - self.lr * self.decay, 0.0)?;
            var.set(&decayed.sub(&update)?)?;
        }
        Ok(())
    }
}

/// Trains a model on `examples`; `on_epoch(epoch, mean_loss, &weights)` runs after each pass
/// (the binary prints validation figures there).
pub fn train(
    examples: &[Example],
    config: TrainConfig,
    mut on_epoch: impl FnMut(usize, f32, &Weights),
) -> Result<Weights, MlError> {
    if examples.is_empty() || config.batch == 0 {
        return Err(MlError::Training("no training examples".into()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let weights = Weights::init(&mut rng)?;
    let mut adam = Adam::new(&weights, config.learning_rate, config.weight_decay).map_err(err)?;
    let mut order: Vec<usize> = (0..examples.len()).collect();
    for epoch in 0..config.epochs {
        order.shuffle(&mut rng);
        let (mut total, mut steps) = (0.0f32, 0usize);
        for chunk in order.chunks(config.batch) {
            let texts: Vec<&str> = chunk
                .iter()
                .map(|&i| examples[i].normalized.as_str())
                .collect();
            let labels: Vec<f32> = chunk
                .iter()
                .map(|&i| f32::from(u8::from(examples[i].attack)))
                .collect();
            let weight: Vec<f32> = chunk
                .iter()
                .map(|&i| {
                    if examples[i].attack {
                        1.0
                    } else {
                        config.benign_weight
                    }
                })
                .collect();
            let mut step = || -> candle_core::Result<f32> {
                let x = dense_batch(&texts)?;
                let y = Tensor::new(labels.as_slice(), &Device::Cpu)?;
                let wt = Tensor::new(weight.as_slice(), &Device::Cpu)?;
                let l = loss(&forward(&x, &weights)?, &y, &wt)?;
                let grads = l.backward()?;
                adam.step(&weights, &grads)?;
                l.to_scalar::<f32>()
            };
            total += step().map_err(err)?;
            steps += 1;
        }
        on_epoch(epoch, total / steps.max(1) as f32, &weights);
    }
    Ok(weights)
}
