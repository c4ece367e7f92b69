//! When does demand come back after it stops? The tier rule's input for keeping a warm
//! replica through an idle spell, letting it go cold, and starting one (cold) ahead of a
//! predicted return (`crate::tiers`, `docs/scale-to-zero.md`, *Warm or cold through an idle
//! spell*).
//!
//! Where to start: [`ReturnForecast::observe`] (fed every demand sample the forecaster
//! gets, history included) and [`ReturnForecast::odds`], the probability that demand
//! returns within a span, given the model has been idle until its start. Two sources, both
//! learnt from the samples, no clock, no I/O:
//! - **time of day** (once a whole day has been seen): the share of the last
//!   [`DAYS_KEPT`] days with demand at that time of day (bins of [`TOD_BIN_S`], one bin of
//!   slack either side for jitter). Demand with a daily cycle comes back when it came back
//!   on the days before, and not at the hours it never came;
//! - **idle-spell lengths** (before that): the lengths of the completed idle spells seen so
//!   far, each spread log-uniformly over a factor of 2 either side (a spell of 20 min says
//!   "spells end somewhere between 10 and 40 min"), conditioned on the spell having lasted
//!   as long as it has (the hazard of that distribution over the span).
//!
//! Both have bounded support by default: beyond the longest spell seen (×2), or at a time of
//! day no recent day had demand, the estimate is 0 — the data say nobody came back then.
//! A return there costs one cold start and is learnt (a new spell, an active bin).
//!
//! With a **base-rate prior** ([`ReturnForecast::set_prior_days`] > 0, `sizing.tiers.
//! return_prior_days`) the estimate is shrunk towards the model's own rate of returns after
//! long idle spells (returns per idle second beyond the span, an exponential tail fitted to
//! the spells seen and the spell still open, with the Jeffreys prior's half return), so a
//! model whose bursts come at hours no earlier day had demand is not given probability 0
//! there. Off by default: at a warm replica's full GPU price it keeps sporadic models warm
//! through whole days (`docs/scale-to-zero.md`, *Sporadic models*).

use std::collections::VecDeque;

/// Width of a time-of-day bin, seconds.
pub const TOD_BIN_S: f64 = 600.0;
/// Days of time-of-day activity kept.
pub const DAYS_KEPT: usize = 7;
/// Completed idle spells needed before their lengths are trusted.
pub const MIN_SPELLS: usize = 3;
/// Completed idle spells kept (the most recent).
pub const SPELLS_KEPT: usize = 256;
/// Spread of a seen spell length: it stands for lengths within this factor either side.
pub const SPELL_SPREAD: f64 = 2.0;

const DAY_S: f64 = 86_400.0;
const BINS: usize = (DAY_S / TOD_BIN_S) as usize;

/// Which source an estimate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnSource {
    /// Activity at this time of day on the days seen.
    TimeOfDay,
    /// Lengths of the idle spells seen.
    SpellLengths,
}

impl ReturnSource {
    /// A short word for reasons.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::TimeOfDay => "time of day",
            Self::SpellLengths => "idle-spell lengths",
        }
    }
}

/// One estimate: the probability and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReturnOdds {
    /// Probability that demand returns within the span, given idle until its start.
    pub probability: f64,
    /// Its source.
    pub source: ReturnSource,
}

/// One day's activity per time-of-day bin.
#[derive(Debug, Clone)]
struct Day {
    index: i64,
    seen: [bool; BINS],
    active: [bool; BINS],
}

/// Learns when demand returns after it stops (see the module header).
#[derive(Debug, Clone, Default)]
pub struct ReturnForecast {
    /// Time of the latest sample with demand.
    last_active_s: Option<f64>,
    /// Whether the latest sample had demand.
    active_now: bool,
    /// Completed idle spells, seconds, oldest first.
    spells: VecDeque<f64>,
    /// Activity by time of day, oldest day first.
    days: VecDeque<Day>,
    /// Weight of the base-rate prior, in days (0: bounded support, the default).
    prior_days: f64,
}

fn split(t_s: f64) -> (i64, usize) {
    let day = (t_s / DAY_S).floor();
    let bin = ((t_s - day * DAY_S) / TOD_BIN_S).floor() as usize;
    (day as i64, bin.min(BINS - 1))
}

/// Survival of a spell length seen as `len_s`, spread log-uniformly over
/// `[len/SPELL_SPREAD, len·SPELL_SPREAD]`: the probability it lasts beyond `t_s`.
fn survival(len_s: f64, t_s: f64) -> f64 {
    let (lo, hi) = (len_s / SPELL_SPREAD, len_s * SPELL_SPREAD);
    if t_s <= lo {
        1.0
    } else if t_s >= hi {
        0.0
    } else {
        1.0 - (t_s / lo).ln() / (hi / lo).ln()
    }
}

impl ReturnForecast {
    /// Nothing learnt yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Weight of the base-rate prior in days of time-of-day evidence (0, the default: off).
    /// Negative or non-finite values count as 0. Keeps what was learnt.
    pub fn set_prior_days(&mut self, prior_days: f64) {
        self.prior_days = if prior_days.is_finite() {
            prior_days.max(0.0)
        } else {
            0.0
        };
    }

    /// Feeds one demand sample (req/s at `now_s`, non-decreasing times). A sample with
    /// demand after samples without ends an idle spell, which is recorded.
    pub fn observe(&mut self, now_s: f64, rps: f64) {
        if !(rps.is_finite() && now_s.is_finite()) {
            return;
        }
        let active = rps > 0.0;
        if active {
            if let (false, Some(t)) = (self.active_now, self.last_active_s)
                && now_s > t
            {
                if self.spells.len() == SPELLS_KEPT {
                    self.spells.pop_front();
                }
                self.spells.push_back(now_s - t);
            }
            self.last_active_s = Some(now_s);
        }
        self.active_now = active;
        let (day, bin) = split(now_s);
        if self.days.back().is_none_or(|d| d.index < day) {
            if self.days.len() > DAYS_KEPT {
                self.days.pop_front();
            }
            self.days.push_back(Day {
                index: day,
                seen: [false; BINS],
                active: [false; BINS],
            });
        }
        if let Some(d) = self.days.iter_mut().rev().find(|d| d.index == day) {
            d.seen[bin] = true;
            d.active[bin] |= active;
        }
    }

    /// Seconds since the latest sample with demand, when the latest sample had none
    /// (`None` while active or before any demand).
    #[must_use]
    pub fn idle_for_s(&self, now_s: f64) -> Option<f64> {
        match (self.active_now, self.last_active_s) {
            (false, Some(t)) => Some((now_s - t).max(0.0)),
            _ => None,
        }
    }

    /// Completed idle spells seen (the most recent [`SPELLS_KEPT`]).
    #[must_use]
    pub fn spells(&self) -> usize {
        self.spells.len()
    }

    /// Whole days seen before the day of `t_s` (days with every bin sampled).
    fn full_days_before(&self, t_s: f64) -> impl Iterator<Item = &Day> {
        let (today, _) = split(t_s);
        self.days
            .iter()
            .filter(move |d| d.index < today && d.seen.iter().all(|s| *s))
            .rev()
            .take(DAYS_KEPT)
    }

    /// Probability that demand returns within `(now + ahead_s, now + ahead_s + span_s]`,
    /// given none until `now + ahead_s`; `None` while the model is active or nothing has
    /// been learnt yet (the caller falls back to its prior).
    ///
    /// With a base-rate prior of `k` days, the learnt estimate `p` (the time-of-day share
    /// of `n` days, or the spell hazard counted as one day) becomes `(n·p + k·b) / (n + k)`,
    /// `b` the probability of a return within the span at the model's rate of returns
    /// after long idle spells ([`Self::base_rate_per_s`]).
    #[must_use]
    pub fn odds(&self, now_s: f64, ahead_s: f64, span_s: f64) -> Option<ReturnOdds> {
        let idle_s = self.idle_for_s(now_s)?;
        let from_s = now_s + ahead_s;
        let shrink = |p: f64, n: f64| {
            if self.prior_days > 0.0 {
                let b = 1.0 - (-self.base_rate_per_s(idle_s, span_s) * span_s).exp();
                (n * p + self.prior_days * b) / (n + self.prior_days)
            } else {
                p
            }
        };
        let days: Vec<&Day> = self.full_days_before(from_s).collect();
        if !days.is_empty() {
            // Bins overlapping the span, one bin of slack either side.
            let first = from_s - TOD_BIN_S;
            let n = ((span_s + 2.0 * TOD_BIN_S) / TOD_BIN_S).ceil() as i64;
            let (today, _) = split(from_s);
            let active = days
                .iter()
                .filter(|d| {
                    // The same times of day on day `d` (a span crossing midnight reads the
                    // day after it).
                    let back = (today - d.index) as f64 * DAY_S;
                    (0..=n).any(|k| {
                        let (day, bin) = split(first + k as f64 * TOD_BIN_S - back);
                        self.days.iter().any(|o| o.index == day && o.active[bin])
                    })
                })
                .count();
            let seen = days.len() as f64;
            return Some(ReturnOdds {
                probability: shrink(active as f64 / seen, seen),
                source: ReturnSource::TimeOfDay,
            });
        }
        if self.spells.len() < MIN_SPELLS {
            return None;
        }
        let (e0, e1) = (idle_s + ahead_s, idle_s + ahead_s + span_s);
        let (mut at_risk, mut ending) = (0.0, 0.0);
        for &l in &self.spells {
            let s0 = survival(l, e0);
            at_risk += s0;
            ending += s0 - survival(l, e1);
        }
        Some(ReturnOdds {
            probability: shrink(if at_risk > 0.0 { ending / at_risk } else { 0.0 }, 1.0),
            source: ReturnSource::SpellLengths,
        })
    }

    /// The model's rate of returns after long idle spells, per idle second: an exponential
    /// tail beyond `threshold_s`, fitted to the spells seen that lasted longer and the
    /// idle seconds they (and the spell still open, `idle_s`) spent beyond it, with the
    /// Jeffreys prior of a Poisson rate (half a return): `(returns + ½) / exposure`, the
    /// exposure at least one `threshold_s`. So a model seen active once and idle for a day
    /// since gets ½ return per day, not 0: one burst says bursts happen, not when.
    #[must_use]
    pub fn base_rate_per_s(&self, idle_s: f64, threshold_s: f64) -> f64 {
        let long = self.spells.iter().filter(|&&l| l > threshold_s);
        let returns = long.clone().count() as f64;
        let exposure_s: f64 =
            long.map(|l| l - threshold_s).sum::<f64>() + (idle_s - threshold_s).max(0.0);
        (returns + 0.5) / exposure_s.max(threshold_s).max(f64::MIN_POSITIVE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `rps` every 60 s over `[from_s, to_s)`.
    fn feed(f: &mut ReturnForecast, from_s: f64, to_s: f64, rps: f64) {
        let mut t = from_s;
        while t < to_s {
            f.observe(t, rps);
            t += 60.0;
        }
    }

    #[test]
    fn idle_spells_are_measured_from_the_last_demand_to_the_next() {
        let mut f = ReturnForecast::new();
        assert_eq!(f.idle_for_s(0.0), None);
        feed(&mut f, 0.0, 600.0, 1.0);
        assert_eq!(f.idle_for_s(600.0), None, "active");
        feed(&mut f, 600.0, 1800.0, 0.0);
        assert_eq!(
            f.idle_for_s(1800.0),
            Some(1260.0),
            "since the sample at 540 s"
        );
        assert_eq!(f.spells(), 0);
        f.observe(1800.0, 2.0);
        assert_eq!(f.spells(), 1);
        assert_eq!(f.idle_for_s(1810.0), None);
    }

    #[test]
    fn spell_lengths_give_a_hazard_that_ends_beyond_the_longest_seen() {
        let mut f = ReturnForecast::new();
        let mut t = 0.0;
        // Spells of 21 min (the last demand at 540 s, the next at 1800 s), three times.
        for _ in 0..3 {
            feed(&mut f, t, t + 600.0, 1.0);
            feed(&mut f, t + 600.0, t + 1800.0, 0.0);
            t += 1800.0 + 60.0;
            f.observe(t - 60.0, 1.0);
        }
        assert_eq!(f.spells(), 3);
        // Not idle: no estimate.
        assert!(f.odds(t, 0.0, 300.0).is_none());
        feed(&mut f, t, t + 600.0, 0.0);
        let now = t + 600.0 - 60.0;
        // Idle 10 min: a 20-min spell (spread 10–40 min) ends within 5 min with a fair
        // chance.
        let early = f.odds(now, 0.0, 300.0).unwrap();
        assert_eq!(early.source, ReturnSource::SpellLengths);
        assert!(
            early.probability > 0.1 && early.probability < 0.5,
            "{early:?}"
        );
        // Idle 41 min: near the end of the spread, whatever is left ends within 5 min.
        assert_eq!(f.odds(now, 1860.0, 300.0).unwrap().probability, 1.0);
        // Idle 42.2 min: beyond every spell seen (×2): nothing is expected.
        let late = f.odds(now, 1930.0, 300.0).unwrap();
        assert_eq!(late.probability, 0.0);
        // Two spells are not enough to trust.
        let mut g = ReturnForecast::new();
        feed(&mut g, 0.0, 60.0, 1.0);
        feed(&mut g, 60.0, 600.0, 0.0);
        feed(&mut g, 600.0, 660.0, 1.0);
        feed(&mut g, 660.0, 1200.0, 0.0);
        feed(&mut g, 1200.0, 1260.0, 1.0);
        feed(&mut g, 1260.0, 1800.0, 0.0);
        assert_eq!(g.spells(), 2);
        assert!(g.odds(1800.0, 0.0, 300.0).is_none());
    }

    #[test]
    fn a_daily_cycle_says_when_demand_returns_and_when_it_never_does() {
        let mut f = ReturnForecast::new();
        // Two days: demand from 08:00 to 17:00, idle otherwise.
        for day in 0..2 {
            let d = f64::from(day) * DAY_S;
            feed(&mut f, d, d + 8.0 * 3600.0, 0.0);
            feed(&mut f, d + 8.0 * 3600.0, d + 17.0 * 3600.0, 1.0);
            feed(&mut f, d + 17.0 * 3600.0, d + DAY_S, 0.0);
        }
        // Day 3 at 02:00, idle since 17:00 the day before.
        let now = 2.0 * DAY_S + 2.0 * 3600.0;
        feed(&mut f, 2.0 * DAY_S, now + 60.0, 0.0);
        let night = f.odds(now, 0.0, 300.0).unwrap();
        assert_eq!(night.source, ReturnSource::TimeOfDay);
        assert_eq!(night.probability, 0.0, "no day had demand at 02:00");
        // At 07:50, the span 5 min after the next cold start (07:55–08:00 plus slack)
        // reaches the hours every day had demand.
        let morning = 2.0 * DAY_S + 7.0 * 3600.0 + 50.0 * 60.0;
        feed(&mut f, now + 60.0, morning + 60.0, 0.0);
        assert_eq!(f.odds(morning, 300.0, 300.0).unwrap().probability, 1.0);
        // An hour earlier, not yet.
        assert_eq!(
            f.odds(morning - 3600.0, 300.0, 300.0).unwrap().probability,
            0.0
        );
    }

    /// Deliberate, measured (`docs/BENCHMARKS.md`, *One day of history: shrinking …*): once
    /// one whole day exists, its time of day decides alone, even where the idle-spell
    /// lengths still expect a return. Shrinking towards them kept pods through whole nights
    /// at the default wait price (break-even 0.03–0.7 % per span).
    #[test]
    fn one_whole_day_decides_alone_where_the_spell_lengths_still_expect_a_return() {
        // Day 0: short bursts at 00:10, 01:00 and 02:00, then demand 08:00–17:00: spells
        // of 41 min, 51 min and 5.85 h. `whole` samples the day from 00:00, the other from
        // 00:10 (its first bin unsampled: no whole day).
        let run = |whole: bool| {
            let mut f = ReturnForecast::new();
            if whole {
                feed(&mut f, 0.0, 600.0, 0.0);
            }
            feed(&mut f, 600.0, 1200.0, 1.0);
            feed(&mut f, 1200.0, 3600.0, 0.0);
            feed(&mut f, 3600.0, 4200.0, 1.0);
            feed(&mut f, 4200.0, 7200.0, 0.0);
            feed(&mut f, 7200.0, 7800.0, 1.0);
            feed(&mut f, 7800.0, 8.0 * 3600.0, 0.0);
            feed(&mut f, 8.0 * 3600.0, 17.0 * 3600.0, 1.0);
            // To day 1, 03:30: idle 10.5 h, within twice the 5.85-h spell.
            feed(&mut f, 17.0 * 3600.0, DAY_S + 3.5 * 3600.0 + 60.0, 0.0);
            f
        };
        let now = DAY_S + 3.5 * 3600.0;
        let partial = run(false);
        assert_eq!(partial.spells(), 3);
        let spells = partial.odds(now, 0.0, 300.0).unwrap();
        assert_eq!(spells.source, ReturnSource::SpellLengths);
        assert!(spells.probability > 0.0, "{spells:?}");
        let day = run(true);
        assert_eq!(day.spells(), 3);
        let tod = day.odds(now, 0.0, 300.0).unwrap();
        assert_eq!(tod.source, ReturnSource::TimeOfDay);
        assert_eq!(tod.probability, 0.0, "no demand at 03:30 on the day seen");
    }

    /// The base-rate prior: a sporadic model (bursts at 03:00, 11:00 and 19:00 on day 0,
    /// a day of 21-h idleness follows) has probability 0 at 07:00 on day 1 from its one
    /// day alone; with the prior it is the day-0 rate of returns after long spells, shrunk
    /// by one day of evidence against one pseudo-day. The rate falls as the open spell
    /// grows; a model whose long spells never ended gets the Jeffreys half return.
    #[test]
    fn a_base_rate_prior_gives_unseen_hours_the_models_rate_of_returns() {
        let mut f = ReturnForecast::new();
        for (from_h, to_h, rps) in [
            (0.0, 3.0, 0.0),
            (3.0, 3.5, 1.0),
            (3.5, 11.0, 0.0),
            (11.0, 11.5, 1.0),
            (11.5, 19.0, 0.0),
            (19.0, 19.5, 1.0),
            (19.5, 31.0, 0.0),
        ] {
            feed(&mut f, from_h * 3600.0, to_h * 3600.0, rps);
        }
        let now = 31.0 * 3600.0 - 60.0;
        let plain = f.odds(now, 0.0, 300.0).unwrap();
        assert_eq!(plain.source, ReturnSource::TimeOfDay);
        assert_eq!(plain.probability, 0.0, "no demand at 07:00 on day 0");
        // Two long spells ended (7.5 h each, from the last sample at 03:29 and 11:29 to
        // 11:00 and 19:00); the open one runs from 19:29.
        let idle = f.idle_for_s(now).unwrap();
        let spell = 7.5 * 3600.0 + 60.0;
        let rate = f.base_rate_per_s(idle, 300.0);
        let want = 2.5 / (2.0 * (spell - 300.0) + (idle - 300.0));
        assert!((rate - want).abs() < 1e-12, "{rate} vs {want}");
        f.set_prior_days(1.0);
        let shrunk = f.odds(now, 0.0, 300.0).unwrap();
        let b = 1.0 - (-want * 300.0).exp();
        assert!((shrunk.probability - b / 2.0).abs() < 1e-12, "{shrunk:?}");
        assert!(shrunk.probability > 0.001 && shrunk.probability < 0.02);
        // A day more of idleness nearly halves the rate (the open spell is exposure).
        assert!(f.base_rate_per_s(idle + 86_400.0, 300.0) < rate * 0.6);
        // Where the day saw demand (11:00), the share still dominates.
        assert!(f.odds(now + 4.0 * 3600.0, 0.0, 300.0).unwrap().probability > 0.5);
        // No long spell ever ended (one burst, then two days idle): half a return over the
        // exposure, so the estimate is small but not 0, and falls as the spell goes on.
        let mut g = ReturnForecast::new();
        feed(&mut g, 0.0, 3600.0, 1.0);
        feed(&mut g, 3600.0, 2.0 * 86_400.0, 0.0);
        let idle = g.idle_for_s(2.0 * 86_400.0 - 60.0).unwrap();
        assert_eq!(
            g.odds(2.0 * 86_400.0 - 60.0, 0.0, 300.0)
                .unwrap()
                .probability,
            0.0
        );
        g.set_prior_days(1.0);
        let p = g
            .odds(2.0 * 86_400.0 - 60.0, 0.0, 300.0)
            .unwrap()
            .probability;
        let b = 1.0 - (-0.5 / (idle - 300.0) * 300.0).exp();
        assert!((p - b / 2.0).abs() < 1e-12, "{p} vs {}", b / 2.0);
        assert!(p > 0.0 && p < 0.001, "{p}");
    }
}
