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
//! Both have bounded support on purpose: beyond the longest spell seen (×2), or at a time of
//! day no recent day had demand, the estimate is 0 — the data say nobody came back then.
//! A return there costs one cold start and is learnt (a new spell, an active bin).

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
    #[must_use]
    pub fn odds(&self, now_s: f64, ahead_s: f64, span_s: f64) -> Option<ReturnOdds> {
        let idle_s = self.idle_for_s(now_s)?;
        let from_s = now_s + ahead_s;
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
            return Some(ReturnOdds {
                probability: active as f64 / days.len() as f64,
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
            probability: if at_risk > 0.0 { ending / at_risk } else { 0.0 },
            source: ReturnSource::SpellLengths,
        })
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
}
