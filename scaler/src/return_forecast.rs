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
/// Strength of the spell-length estimate as a prior on the time-of-day share, in days of
/// evidence at that time of day (see [`ReturnForecast::odds`]).
pub const PRIOR_DAYS: f64 = 1.0;

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
    ///
    /// With whole days seen, the time-of-day share is shrunk towards the idle-spell
    /// estimate: the posterior mean of a Beta prior centred on the spell hazard `h` with
    /// [`PRIOR_DAYS`] pseudo-days, updated by `k` of `n` days with demand at that time of
    /// day: `(PRIOR_DAYS·h + k) / (PRIOR_DAYS + n)`. Without days, the spell hazard alone.
    #[must_use]
    pub fn odds(&self, now_s: f64, ahead_s: f64, span_s: f64) -> Option<ReturnOdds> {
        let idle_s = self.idle_for_s(now_s)?;
        let from_s = now_s + ahead_s;
        let (e0, e1) = (idle_s + ahead_s, idle_s + ahead_s + span_s);
        let hazard = self.spell_hazard(e0, e1);
        let days: Vec<&Day> = self.full_days_before(from_s).collect();
        if days.is_empty() {
            return hazard.map(|probability| ReturnOdds {
                probability,
                source: ReturnSource::SpellLengths,
            });
        }
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
        // The prior's centre: the spell hazard, or before enough spells the scale-free
        // (Lindy) prior the TTL stands for, `P(return within the span | idle e0) =
        // span / e1` (`docs/scale-to-zero.md`, *Derivation*).
        let centre = hazard.unwrap_or(if e1 > 0.0 { span_s / e1 } else { 1.0 });
        Some(ReturnOdds {
            probability: (PRIOR_DAYS * centre + active as f64) / (PRIOR_DAYS + days.len() as f64),
            source: ReturnSource::TimeOfDay,
        })
    }

    /// The hazard of the spell-length distribution over idle times `(e0, e1]`: the
    /// probability a spell that has lasted `e0` ends by `e1`; `None` before
    /// [`MIN_SPELLS`] spells.
    fn spell_hazard(&self, e0: f64, e1: f64) -> Option<f64> {
        if self.spells.len() < MIN_SPELLS {
            return None;
        }
        let (mut at_risk, mut ending) = (0.0, 0.0);
        for &l in &self.spells {
            let s0 = survival(l, e0);
            at_risk += s0;
            ending += s0 - survival(l, e1);
        }
        Some(if at_risk > 0.0 { ending / at_risk } else { 0.0 })
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
        // No day had demand at 02:00: only the prior's share is left, here the scale-free
        // one (a single spell seen), 300 s / 9 h 5 min, over 1 + 2 days.
        let lindy = 300.0 / (9.0 * 3600.0 + 60.0 + 300.0);
        assert!((night.probability - lindy / 3.0).abs() < 1e-12, "{night:?}");
        // At 07:50, the span 5 min after the next cold start (07:55–08:00 plus slack)
        // reaches the hours every day had demand: both days, shrunk by one pseudo-day.
        let morning = 2.0 * DAY_S + 7.0 * 3600.0 + 50.0 * 60.0;
        feed(&mut f, now + 60.0, morning + 60.0, 0.0);
        let p = f.odds(morning, 300.0, 300.0).unwrap().probability;
        assert!(p > 2.0 / 3.0 && p < 1.0, "{p}");
        // An hour earlier, not yet: the prior's share only.
        assert!(f.odds(morning - 3600.0, 300.0, 300.0).unwrap().probability < 0.01);
    }

    /// Three 20-min idle spells from 00:00 (so the spell-length estimate exists), then
    /// days of demand from 08:00 to 17:00 (`active[d]`: whether day `d` had it), then idle
    /// up to `until_h` hours into the next day. Returns the forecast and that time.
    fn days_then_idle(active: &[bool], until_h: f64) -> (ReturnForecast, f64) {
        let mut f = ReturnForecast::new();
        let mut t = 0.0;
        for _ in 0..3 {
            feed(&mut f, t, t + 600.0, 1.0);
            feed(&mut f, t + 600.0, t + 1800.0, 0.0);
            t += 1800.0;
        }
        feed(&mut f, t, t + 600.0, 1.0);
        t += 600.0;
        for (day, a) in active.iter().enumerate() {
            let d = day as f64 * DAY_S;
            let rps = if *a { 1.0 } else { 0.0 };
            feed(&mut f, t, d + 8.0 * 3600.0, 0.0);
            feed(&mut f, d + 8.0 * 3600.0, d + 17.0 * 3600.0, rps);
            t = d + 17.0 * 3600.0;
        }
        let now = active.len() as f64 * DAY_S + until_h * 3600.0;
        feed(&mut f, t, now + 60.0, 0.0);
        (f, now)
    }

    #[test]
    fn one_day_of_evidence_is_shrunk_towards_the_spell_lengths_not_taken_as_0_or_1() {
        // Day 0 had demand 08:00–17:00; day 1 at 07:40, idle since 17:00: the span from
        // 08:00 reaches hours day 0 had demand.
        let (f, now) = days_then_idle(&[true], 7.0 + 40.0 / 60.0);
        let h = f.spell_hazard(
            f.idle_for_s(now).unwrap() + 1200.0,
            f.idle_for_s(now).unwrap() + 1500.0,
        );
        let o = f.odds(now, 1200.0, 300.0).unwrap();
        assert_eq!(o.source, ReturnSource::TimeOfDay);
        assert!(o.probability < 1.0, "{o:?}");
        assert_eq!(
            o.probability,
            (PRIOR_DAYS * h.unwrap() + 1.0) / (PRIOR_DAYS + 1.0)
        );
        // At 02:00 (idle 9 h) no day had demand: not 0 while the spells seen still say the
        // lull may end (day 0's 6.4-hour morning lull, spread to 3.2–12.7 h, is among them).
        let (f, now) = days_then_idle(&[true], 2.0);
        let e = f.idle_for_s(now).unwrap();
        let h = f.spell_hazard(e, e + 300.0).unwrap();
        assert!(h > 0.0);
        let o = f.odds(now, 0.0, 300.0).unwrap();
        assert!(o.probability > 0.0, "{o:?}");
        assert_eq!(o.probability, PRIOR_DAYS * h / (PRIOR_DAYS + 1.0));
    }

    #[test]
    fn many_days_of_evidence_converge_to_the_time_of_day_share() {
        // The same 07:40 span after 1, 3 and 7 days (1 of 1, 2 of 3, 5 of 7 with demand then):
        // the estimate is within 1 / (PRIOR_DAYS + n) of the share, closer as days add up.
        let cases: [&[bool]; 3] = [
            &[true],
            &[true, false, true],
            &[true, false, true, true, false, true, true],
        ];
        let mut gaps = vec![];
        for active in cases {
            let (f, now) = days_then_idle(active, 7.0 + 40.0 / 60.0);
            let p = f.odds(now, 1200.0, 300.0).unwrap().probability;
            let share = active.iter().filter(|a| **a).count() as f64 / active.len() as f64;
            let gap = (p - share).abs();
            assert!(
                gap <= 1.0 / (PRIOR_DAYS + active.len() as f64) + 1e-12,
                "{p} vs {share}"
            );
            gaps.push(gap);
        }
        assert!(gaps[0] > gaps[1] && gaps[1] > gaps[2], "{gaps:?}");
        // Seven days without demand at 02:00, and the spells seen no longer say the lull
        // may end (idle longer than twice every spell): 0, the pod can go cold.
        let (f, now) = days_then_idle(&[false; 7], 2.0);
        assert_eq!(f.odds(now, 0.0, 300.0).unwrap().probability, 0.0);
    }

    #[test]
    fn no_whole_day_gives_the_spell_length_estimate() {
        // Day 0 only, at 01:48, idle 9 min after three 21-min spells.
        let (f, now) = days_then_idle(&[], 1.8);
        let e = f.idle_for_s(now).unwrap();
        let o = f.odds(now, 0.0, 300.0).unwrap();
        assert!(o.probability > 0.0, "{o:?}");
        assert_eq!(o.source, ReturnSource::SpellLengths);
        assert_eq!(Some(o.probability), f.spell_hazard(e, e + 300.0));
    }
}
