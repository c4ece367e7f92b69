//! Performance profile of one model on one GPU type at one parallelism: the measured
//! curves the latency model ([`crate::latency`]) runs on.
//!
//! Where to start: [`Profile`] (the YAML schema, documented in `docs/performance-model.md`),
//! [`Profile::from_yaml`], and [`fit`] for turning measurements into a profile. This module
//! never reads files: callers hand it text.
//!
//! The two curves are iteration-level, as in a continuous-batching engine (vLLM, TensorRT-LLM):
//! - prefill: `time_ms(batch, P) = base_ms + per_token_ms·batch·P + per_token_sq_ms·batch·P²`
//!   (linear work in tokens plus the quadratic attention term);
//! - decode step: `step_ms(batch, kv) = base_ms + per_seq_ms·batch + per_kv_token_ms·kv`, where
//!   `kv` is the number of context tokens held in the KV cache by the batch (attention reads);
//!   a prompt mixed into a decode step adds `mixed_prefill_factor` × its prefill work; with
//!   `cuda_graph_batch_sizes` set, `batch` in the `per_seq_ms` term is the batch padded up to
//!   the next captured CUDA-graph size (vLLM runs decode steps through graphs captured at
//!   fixed batch sizes and pads the batch to the next one).
pub mod fit;

use serde::{Deserialize, Serialize};

/// Errors reading or checking a profile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileError {
    /// The text is not YAML of the profile schema (unknown field, wrong type, missing field).
    #[error("profile YAML does not match the schema: {0}")]
    Yaml(String),
    /// A field holds a value outside its domain.
    #[error("profile field `{field}`: expected {expected}, got {got}")]
    Invalid {
        /// Dotted path of the field, e.g. `decode.base_ms`.
        field: &'static str,
        /// What the field must be.
        expected: &'static str,
        /// The value found.
        got: String,
    },
}

/// One model × GPU type × parallelism. All times carry their unit in the field name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Model name as served, e.g. `meta-llama/Llama-3.1-8B`.
    pub model: String,
    /// GPU type, e.g. `H100-80GB`.
    pub gpu: String,
    /// Tensor-parallel degree (GPUs per replica).
    pub tensor_parallel: u32,
    /// Serving engine the curves were measured on, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Time to prefill prompts (and emit the first token).
    pub prefill: PrefillCurve,
    /// Time of one decode iteration of a running batch.
    pub decode: DecodeCurve,
    /// Capacity limits of one replica.
    pub limits: Limits,
    /// Start-up times of one replica.
    pub lifecycle: Lifecycle,
    /// Price of one replica for one hour (all its GPUs), in the user's currency. An input:
    /// there is no default.
    pub cost_per_hour: f64,
    /// Where the numbers come from.
    pub provenance: Provenance,
}

/// Prefill time of `batch` prompts of `P` tokens each, processed together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefillCurve {
    /// Fixed time per prefill (scheduling, first sampling step; for client-side measurements
    /// also the HTTP round trip).
    pub base_ms: f64,
    /// Time per prompt token (the linear, compute-bound part).
    pub per_token_ms: f64,
    /// Time per squared prompt token per sequence (attention over the prompt).
    pub per_token_sq_ms: f64,
}

impl PrefillCurve {
    /// Time to prefill `batch` prompts of `prompt_tokens` tokens each in one batch.
    #[must_use]
    pub fn time_ms(&self, batch: f64, prompt_tokens: f64) -> f64 {
        self.base_ms + batch * self.work_ms(prompt_tokens)
    }

    /// GPU work one prompt adds to whatever step it is scheduled in (no fixed part): what a
    /// prompt costs the other requests when it is mixed into their decode steps.
    #[must_use]
    pub fn work_ms(&self, prompt_tokens: f64) -> f64 {
        self.per_token_ms * prompt_tokens + self.per_token_sq_ms * prompt_tokens * prompt_tokens
    }
}

/// Time of one decode iteration (one token for every running sequence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeCurve {
    /// Fixed time per iteration (reading the weights, launch overhead). Must be > 0.
    pub base_ms: f64,
    /// Time per running sequence in the batch.
    pub per_seq_ms: f64,
    /// Time per context token held in the KV cache by the batch.
    pub per_kv_token_ms: f64,
    /// Fraction of a prompt's standalone prefill work that a decode step grows by when the
    /// prompt is mixed into it (chunked prefill). Below 1 when memory-bound decode steps
    /// hide part of the prefill compute; 1 (the default) assumes no overlap.
    #[serde(default = "one")]
    pub mixed_prefill_factor: f64,
    /// Batch sizes the engine captured CUDA graphs for, ascending. A decode step of `n`
    /// sequences runs the graph of the smallest size `>= n` (the batch padded with dummy
    /// sequences) and pays `per_seq_ms` for every padded slot; above the largest size the
    /// step runs without a graph, unpadded. Empty (the default): no padding, as for an
    /// engine run eagerly or one whose graph sizes are not known.
    /// [`vllm_default_cuda_graph_batch_sizes`] gives vLLM's default list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cuda_graph_batch_sizes: Vec<u32>,
}

/// vLLM's default CUDA-graph capture sizes for an engine started with `max_num_seqs`
/// (`VllmConfig._set_cudagraph_sizes`, vLLM V1): 1, 2, 4, then multiples of 8 below 256,
/// then multiples of 16 up to `min(2·max_num_seqs, 512)`.
#[must_use]
pub fn vllm_default_cuda_graph_batch_sizes(max_num_seqs: u32) -> Vec<u32> {
    let max_graph = max_num_seqs.saturating_mul(2).min(512);
    [1, 2, 4]
        .into_iter()
        .chain((8..256).step_by(8))
        .chain((256..=max_graph).step_by(16))
        .filter(|&s| s <= max_graph)
        .collect()
}

fn one() -> f64 {
    1.0
}

impl DecodeCurve {
    /// Time of one decode iteration with `batch` sequences holding `kv_tokens` context tokens
    /// (a fractional `batch` is the steady mix of its floor and ceiling, see
    /// [`DecodeCurve::expected_padded_batch`]).
    #[must_use]
    pub fn step_ms(&self, batch: f64, kv_tokens: f64) -> f64 {
        self.base_ms
            + self.per_seq_ms * self.expected_padded_batch(batch, 0.0)
            + self.per_kv_token_ms * kv_tokens
    }

    /// The batch a step of `n` sequences (a whole number) actually runs: `n` padded up to the
    /// next CUDA-graph size, or `n` itself above the largest size or without graph sizes.
    #[must_use]
    pub fn padded_batch(&self, n: f64) -> f64 {
        if n <= 0.0 {
            return 0.0;
        }
        let i = self
            .cuda_graph_batch_sizes
            .partition_point(|&s| f64::from(s) < n);
        self.cuda_graph_batch_sizes
            .get(i)
            .map_or(n, |&s| f64::from(s))
    }

    /// Mean padded batch over steps whose batch has mean `mean` and variance `cv2 × mean`
    /// (the latency model's batch fluctuation: a Poisson count for Poisson arrivals,
    /// `cv2` = 1). `cv2` = 0 is a batch that does not fluctuate beyond the integers: it
    /// alternates between `⌊mean⌋` and `⌈mean⌉`, so the result interpolates [`Self::padded_batch`]
    /// linearly between integers. In between, the mix of the two; above 1 the Poisson value
    /// (once the spread covers a gap between graph sizes the mean padding no longer depends on
    /// it). Equals `mean` without graph sizes.
    #[must_use]
    pub fn expected_padded_batch(&self, mean: f64, cv2: f64) -> f64 {
        if self.cuda_graph_batch_sizes.is_empty() || mean <= 0.0 {
            return mean.max(0.0);
        }
        let lo = mean.floor();
        let frac = mean - lo;
        let steady = (1.0 - frac) * self.padded_batch(lo) + frac * self.padded_batch(lo + 1.0);
        let w = cv2.clamp(0.0, 1.0);
        if w == 0.0 {
            return steady;
        }
        w * self.poisson_padded_batch(mean) + (1.0 - w) * steady
    }

    /// `E[padded_batch(N)]` for `N` Poisson with mean `mean`, summed outwards from the mode
    /// with the pmf's ratio recurrence (no factorials) over ±(10σ + 10), then normalised.
    fn poisson_padded_batch(&self, mean: f64) -> f64 {
        let mode = mean.floor();
        let reach = 10.0 * mean.sqrt() + 10.0;
        let (mut total_w, mut total_pw) = (1.0, self.padded_batch(mode));
        let mut w = 1.0;
        let mut n = mode;
        while n < mode + reach {
            w *= mean / (n + 1.0);
            n += 1.0;
            total_w += w;
            total_pw += w * self.padded_batch(n);
        }
        w = 1.0;
        n = mode;
        while n >= 1.0 && n > mode - reach {
            w *= n / mean;
            n -= 1.0;
            total_w += w;
            total_pw += w * self.padded_batch(n);
        }
        total_pw / total_w
    }
}

/// Limits of one replica.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Tokens the KV cache holds across all running sequences.
    pub kv_capacity_tokens: u64,
    /// Largest number of sequences decoded together (vLLM `max_num_seqs`).
    pub max_batch: u32,
}

/// Start-up times of one replica.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    /// From scheduling a new replica to serving (image pull, weight load, warm-up).
    pub cold_start_s: f64,
    /// From a sleeping replica (weights offloaded) to serving.
    pub wake_from_sleep_s: f64,
}

/// Where a profile comes from: data source, licence, method, assumptions and fit quality.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Data the curves were fitted to (name, file, citation).
    pub source: String,
    /// Licence of that data.
    pub licence: String,
    /// How the profile was made (`fit`, `derive`, `hand`).
    pub method: String,
    /// Anything assumed rather than measured.
    #[serde(default)]
    pub assumptions: Vec<String>,
    /// Fit error per curve.
    #[serde(default)]
    pub fit: Vec<fit::CurveFit>,
}

impl Profile {
    /// Parses and checks a profile from YAML text.
    ///
    /// # Errors
    /// [`ProfileError::Yaml`] if the text does not match the schema (unknown fields are
    /// rejected), [`ProfileError::Invalid`] if a value is out of its domain.
    pub fn from_yaml(text: &str) -> Result<Self, ProfileError> {
        let profile: Self =
            serde_saphyr::from_str(text).map_err(|e| ProfileError::Yaml(e.to_string()))?;
        profile.validate()?;
        Ok(profile)
    }

    /// Renders the profile as YAML that [`Profile::from_yaml`] reads back.
    ///
    /// # Errors
    /// [`ProfileError::Yaml`] if serialisation fails (it does not for finite values).
    pub fn to_yaml(&self) -> Result<String, ProfileError> {
        serde_saphyr::to_string(self).map_err(|e| ProfileError::Yaml(e.to_string()))
    }

    /// Checks every number is in its domain.
    ///
    /// # Errors
    /// [`ProfileError::Invalid`] naming the first offending field.
    pub fn validate(&self) -> Result<(), ProfileError> {
        fn non_negative(field: &'static str, v: f64) -> Result<(), ProfileError> {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(ProfileError::Invalid {
                    field,
                    expected: "a finite number >= 0",
                    got: v.to_string(),
                })
            }
        }
        non_negative("prefill.base_ms", self.prefill.base_ms)?;
        non_negative("prefill.per_token_ms", self.prefill.per_token_ms)?;
        non_negative("prefill.per_token_sq_ms", self.prefill.per_token_sq_ms)?;
        non_negative("decode.base_ms", self.decode.base_ms)?;
        non_negative("decode.per_seq_ms", self.decode.per_seq_ms)?;
        non_negative("decode.per_kv_token_ms", self.decode.per_kv_token_ms)?;
        let sizes = &self.decode.cuda_graph_batch_sizes;
        if sizes.first() == Some(&0) || sizes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ProfileError::Invalid {
                field: "decode.cuda_graph_batch_sizes",
                expected: "batch sizes > 0 in strictly ascending order",
                got: format!("{sizes:?}"),
            });
        }
        let kappa = self.decode.mixed_prefill_factor;
        if !(0.0..=1.0).contains(&kappa) {
            return Err(ProfileError::Invalid {
                field: "decode.mixed_prefill_factor",
                expected: "a fraction in [0, 1]",
                got: kappa.to_string(),
            });
        }
        non_negative("lifecycle.cold_start_s", self.lifecycle.cold_start_s)?;
        non_negative(
            "lifecycle.wake_from_sleep_s",
            self.lifecycle.wake_from_sleep_s,
        )?;
        non_negative("cost_per_hour", self.cost_per_hour)?;
        // A zero decode step would make a replica infinitely fast: the queueing model divides
        // by it.
        if self.decode.base_ms <= 0.0 {
            return Err(ProfileError::Invalid {
                field: "decode.base_ms",
                expected: "a number > 0",
                got: self.decode.base_ms.to_string(),
            });
        }
        if self.prefill.per_token_ms + self.prefill.per_token_sq_ms <= 0.0 {
            return Err(ProfileError::Invalid {
                field: "prefill.per_token_ms",
                expected: "prefill to cost time per token (per_token_ms or per_token_sq_ms > 0)",
                got: self.prefill.per_token_ms.to_string(),
            });
        }
        if self.limits.kv_capacity_tokens == 0 {
            return Err(ProfileError::Invalid {
                field: "limits.kv_capacity_tokens",
                expected: "an integer > 0",
                got: "0".into(),
            });
        }
        if self.limits.max_batch == 0 {
            return Err(ProfileError::Invalid {
                field: "limits.max_batch",
                expected: "an integer > 0",
                got: "0".into(),
            });
        }
        if self.tensor_parallel == 0 {
            return Err(ProfileError::Invalid {
                field: "tensor_parallel",
                expected: "an integer > 0",
                got: "0".into(),
            });
        }
        Ok(())
    }
}
