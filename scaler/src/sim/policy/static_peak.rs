//! `static-peak`: a fixed pool of the first variant sized for the workload's peak 60 s rate
//! at the analytic capacity per replica under the SLO — what operators run without an
//! autoscaler, and the replica count the llm-d result compares against ("8 static").

use super::{Policy, PolicyContext, Wish, first_variant_only};

/// A constant pool sized for the peak.
#[derive(Debug, Clone)]
pub struct StaticPeak {
    replicas: u32,
    mins: Vec<u32>,
}

impl StaticPeak {
    /// Sizes the pool: `ceil(peak / capacity)`, at least 1, at most the variant's max.
    #[must_use]
    pub fn new(ctx: &PolicyContext) -> Self {
        let cap = ctx.capacity_rps(0);
        let n = if cap > 0.0 {
            (ctx.peak_rate_per_s / cap).ceil() as u32
        } else {
            ctx.variants[0].max
        };
        Self {
            replicas: n.clamp(1, ctx.variants[0].max.max(1)),
            mins: ctx.variants.iter().map(|v| v.min).collect(),
        }
    }
}

impl Policy for StaticPeak {
    fn name(&self) -> &str {
        "static-peak"
    }

    fn wishes(&mut self, _obs: &super::Observation) -> Vec<Wish> {
        first_variant_only(&self.mins, Wish::replicas(f64::from(self.replicas)))
    }

    fn initial(&self, default: &[u32]) -> Vec<u32> {
        let mut v = default.to_vec();
        v[0] = self.replicas;
        v
    }
}
