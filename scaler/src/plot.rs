//! PNG charts for `recommend --plot` (start at [`recommend_chart`]).
//!
//! The charts carry no text on purpose: plotters draws text only through system fonts
//! (`font-kit`, which needs fontconfig) or a font compiled in (`ab_glyph` plus a font file
//! whose licence we would have to carry). A chart that fails on a CI machine without fonts,
//! or ships a third-party font, is worse than one without labels. So the PNG holds the
//! shapes and a sidecar JSON beside it ([`Legend`], `FILE.json` for `FILE.png`) says what
//! each colour is and what range each axis spans; `recommend` also prints the ranges to
//! stderr.
//!
//! Drawing is pure: [`recommend_chart`] turns the data into RGB pixels and a legend;
//! [`encode_png`] turns pixels into PNG bytes; only the command writes files.

use std::collections::BTreeMap;

use plotters::prelude::*;
use serde::Serialize;

use crate::recommend::{History, Report};

/// Pixel width of every chart.
pub const WIDTH_PX: u32 = 1200;
/// Pixel height of one model's panel.
pub const PANEL_HEIGHT_PX: u32 = 420;

/// Colours, fixed so tests and readers can find each series in the pixels.
pub const HISTORY: RGBColor = RGBColor(110, 110, 110);
/// The forecast's point line.
pub const FORECAST: RGBColor = RGBColor(31, 119, 180);
/// The forecast's prediction band (drawn opaque, a light tint of [`FORECAST`]).
pub const BAND: RGBColor = RGBColor(174, 206, 230);
/// The cost per hour line.
pub const COST: RGBColor = RGBColor(214, 39, 40);
/// The vertical line at the moment recommended for.
pub const NOW: RGBColor = RGBColor(0, 0, 0);
/// Frames around each strip.
pub const FRAME: RGBColor = RGBColor(200, 200, 200);
/// Replicas per variant, in the order of the model's variants (cycled).
pub const VARIANTS: [RGBColor; 6] = [
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
/// Rolling SLO attainment (both bounds) in backtest panels.
pub const ATTAINMENT: RGBColor = RGBColor(0, 128, 96);
/// The background.
pub const BACKGROUND: RGBColor = RGBColor(255, 255, 255);

/// `#rrggbb`.
pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// What the PNG shows, where, in which colour: written beside it as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Legend {
    /// Image width in pixels.
    pub width_px: u32,
    /// Image height in pixels.
    pub height_px: u32,
    /// Background colour.
    pub background: String,
    /// One panel per model, top to bottom.
    pub panels: Vec<PanelLegend>,
}

/// One model's panel: three strips sharing the x axis (hours from the moment recommended
/// for; negative is history): demand, replicas stacked per variant, cost per hour.
#[derive(Debug, Clone, Serialize)]
pub struct PanelLegend {
    /// Model name.
    pub model: String,
    /// Pixel rows of the panel, `[top, bottom)`.
    pub y_px: [u32; 2],
    /// The x axis of every strip, hours relative to `--at`.
    pub x_hours: [f64; 2],
    /// Demand strip: pixel rows and the y range in requests/s.
    pub demand: Strip,
    /// Replicas strip (stacked bars per hour): pixel rows and the y range in replicas.
    pub replicas: Strip,
    /// Cost strip: pixel rows and the y range in $/h.
    pub cost_per_hour: Strip,
    /// Series colours: `history`, `forecast`, `band`, `cost`, `now`.
    pub colors: BTreeMap<&'static str, String>,
    /// Replica colours per variant, bottom of the stack first.
    pub variant_colors: Vec<(String, String)>,
    /// Why the panel is empty, when the model has no recommendation.
    pub error: Option<String>,
}

/// A strip of a panel.
#[derive(Debug, Clone, Serialize)]
pub struct Strip {
    /// Pixel rows, `[top, bottom)`.
    pub y_px: [u32; 2],
    /// Data range of the y axis.
    pub y_range: [f64; 2],
}

/// A drawing failure (plotters' backend errors, as text).
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The bitmap backend refused a drawing operation.
    #[error("drawing the chart failed: {0}")]
    Draw(String),
    /// PNG encoding failed.
    #[error("encoding the PNG failed: {0}")]
    Encode(String),
}

fn draw_err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

/// A rendered chart: RGB pixels, row-major, and its legend.
pub struct Chart {
    /// `width * height * 3` bytes.
    pub rgb: Vec<u8>,
    /// What is where.
    pub legend: Legend,
}

/// A y range from 0 that shows `max` with headroom; never empty.
fn y_top(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        max * 1.1
    } else {
        1.0
    }
}

/// Draws `report` (one panel per model) with each model's demand `histories` (Unix or trace
/// seconds, requests/s); history older than the schedule's length (at least 24 h) is left out.
pub fn recommend_chart(
    report: &Report,
    histories: &BTreeMap<String, History>,
) -> Result<Chart, PlotError> {
    let n = report.models.len().max(1) as u32;
    let (w, h) = (WIDTH_PX, PANEL_HEIGHT_PX * n);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    let mut panels = Vec::new();
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&BACKGROUND).map_err(draw_err)?;
        let areas = root.split_evenly((n as usize, 1));
        let hours = f64::from(report.hours);
        let past_h = hours.max(24.0);
        for (i, (area, m)) in areas.iter().zip(&report.models).enumerate() {
            let top = i as u32 * PANEL_HEIGHT_PX;
            let x_range = [-past_h, hours];
            let to_h = |t: f64| (t - report.at_s) / 3600.0;
            let history: Vec<(f64, f64)> = histories
                .get(&m.model)
                .map(|hist| {
                    hist.iter()
                        .map(|&(t, v)| (to_h(t), v))
                        .filter(|(x, v)| *x >= -past_h && *x <= 0.0 && v.is_finite())
                        .collect()
                })
                .unwrap_or_default();
            let demand_max = history
                .iter()
                .map(|p| p.1)
                .chain(m.forecast.iter().map(|f| f.upper_rps.max(f.point_rps)))
                .fold(0.0, f64::max);
            let replicas_max = m
                .schedule
                .iter()
                .map(|p| p.replicas.values().sum::<u32>())
                .max()
                .unwrap_or(0);
            let cost_max = m
                .schedule
                .iter()
                .map(|p| p.cost_per_hour)
                .fold(0.0, f64::max);
            let (dy, ry, cy) = (
                y_top(demand_max),
                y_top(f64::from(replicas_max)),
                y_top(cost_max),
            );

            // 8 px margins; strips 50 % / 32 % / 18 % of what is left, 6 px apart.
            let inner = area.margin(8, 8, 8, 8);
            let ih = PANEL_HEIGHT_PX as i32 - 16;
            let d_h = ih * 50 / 100;
            let r_h = ih * 32 / 100;
            let (d_area, rest) = inner.split_vertically(d_h);
            let (r_area, c_area) = rest.split_vertically(r_h);
            let d_area = d_area.margin(0, 3, 0, 0);
            let r_area = r_area.margin(3, 3, 0, 0);
            let c_area = c_area.margin(3, 0, 0, 0);
            let strip = |a: &DrawingArea<BitMapBackend, plotters::coord::Shift>, y: f64| {
                let (_, ys) = a.get_pixel_range();
                Strip {
                    y_px: [ys.start as u32, ys.end as u32],
                    y_range: [0.0, y],
                }
            };
            let variant_colors: Vec<(String, RGBColor)> = m
                .now
                .as_ref()
                .map(|p| {
                    p.variants
                        .iter()
                        .map(|v| v.variant.clone())
                        .collect::<Vec<String>>()
                })
                .unwrap_or_else(|| {
                    m.schedule
                        .first()
                        .map(|p| p.replicas.keys().cloned().collect())
                        .unwrap_or_default()
                })
                .into_iter()
                .enumerate()
                .map(|(k, v)| (v, VARIANTS[k % VARIANTS.len()]))
                .collect();
            panels.push(PanelLegend {
                model: m.model.clone(),
                y_px: [top, top + PANEL_HEIGHT_PX],
                x_hours: x_range,
                demand: strip(&d_area, dy),
                replicas: strip(&r_area, ry),
                cost_per_hour: strip(&c_area, cy),
                colors: [
                    ("history", hex(HISTORY)),
                    ("forecast", hex(FORECAST)),
                    ("band", hex(BAND)),
                    ("cost", hex(COST)),
                    ("now", hex(NOW)),
                ]
                .into_iter()
                .collect(),
                variant_colors: variant_colors
                    .iter()
                    .map(|(v, c)| (v.clone(), hex(*c)))
                    .collect(),
                error: m.error.clone(),
            });

            // Demand: band, history, forecast point line.
            let mut d = ChartBuilder::on(&d_area)
                .build_cartesian_2d(x_range[0]..x_range[1], 0.0..dy)
                .map_err(draw_err)?;
            frame(&mut d, x_range, dy)?;
            if !m.forecast.is_empty() {
                // The forecast is hourly: hold each hour's band and point flat across it.
                let steps = |f: &dyn Fn(&crate::recommend::ForecastHour) -> f64| {
                    m.forecast
                        .iter()
                        .flat_map(|fh| {
                            let x = f64::from(fh.hour);
                            [(x, f(fh)), ((x + 1.0).min(hours), f(fh))]
                        })
                        .collect::<Vec<_>>()
                };
                let upper = steps(&|f| f.upper_rps);
                let lower = steps(&|f| f.lower_rps);
                let band: Vec<(f64, f64)> = upper
                    .iter()
                    .copied()
                    .chain(lower.into_iter().rev())
                    .collect();
                d.draw_series(std::iter::once(Polygon::new(band, BAND.filled())))
                    .map_err(draw_err)?;
                d.draw_series(LineSeries::new(
                    steps(&|f| f.point_rps),
                    FORECAST.stroke_width(2),
                ))
                .map_err(draw_err)?;
            }
            if !history.is_empty() {
                d.draw_series(LineSeries::new(history, HISTORY.stroke_width(1)))
                    .map_err(draw_err)?;
            }
            now_line(&mut d, dy)?;

            // Replicas: one bar per schedule hour, stacked in variant order.
            let mut r = ChartBuilder::on(&r_area)
                .build_cartesian_2d(x_range[0]..x_range[1], 0.0..ry)
                .map_err(draw_err)?;
            frame(&mut r, x_range, ry)?;
            for p in &m.schedule {
                let x = f64::from(p.hour);
                let mut base = 0.0;
                for (v, c) in &variant_colors {
                    let n = f64::from(p.replicas.get(v).copied().unwrap_or(0));
                    if n > 0.0 {
                        r.draw_series(std::iter::once(Rectangle::new(
                            [(x + 0.05, base), ((x + 0.95).min(hours), base + n)],
                            c.filled(),
                        )))
                        .map_err(draw_err)?;
                    }
                    base += n;
                }
            }
            now_line(&mut r, ry)?;

            // Cost per hour of each schedule hour.
            let mut c = ChartBuilder::on(&c_area)
                .build_cartesian_2d(x_range[0]..x_range[1], 0.0..cy)
                .map_err(draw_err)?;
            frame(&mut c, x_range, cy)?;
            let cost: Vec<(f64, f64)> = m
                .schedule
                .iter()
                .flat_map(|p| {
                    let x = f64::from(p.hour);
                    [
                        (x, p.cost_per_hour),
                        ((x + 1.0).min(hours), p.cost_per_hour),
                    ]
                })
                .collect();
            if !cost.is_empty() {
                c.draw_series(LineSeries::new(cost, COST.stroke_width(2)))
                    .map_err(draw_err)?;
            }
            now_line(&mut c, cy)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(Chart {
        rgb,
        legend: Legend {
            width_px: w,
            height_px: h,
            background: hex(BACKGROUND),
            panels,
        },
    })
}

type Cartesian<'a> = ChartContext<
    'a,
    BitMapBackend<'a>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A light frame and a faint line every quarter of the y range (no text; see the module header).
fn frame(chart: &mut Cartesian<'_>, x: [f64; 2], y_top: f64) -> Result<(), PlotError> {
    chart
        .draw_series((1..4).map(|k| {
            let y = y_top * f64::from(k) / 4.0;
            PathElement::new(vec![(x[0], y), (x[1], y)], RGBColor(235, 235, 235))
        }))
        .map_err(draw_err)?;
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(x[0], 0.0), (x[1], y_top)],
            FRAME.stroke_width(1),
        )))
        .map_err(draw_err)?;
    Ok(())
}

/// The moment recommended for (x = 0).
fn now_line(chart: &mut Cartesian<'_>, y_top: f64) -> Result<(), PlotError> {
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0.0), (0.0, y_top)],
            NOW.stroke_width(1),
        )))
        .map_err(draw_err)?;
    Ok(())
}

/// PNG bytes of RGB pixels.
pub fn encode_png(rgb: &[u8], width_px: u32, height_px: u32) -> Result<Vec<u8>, PlotError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width_px, height_px);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| PlotError::Encode(e.to_string()))?;
        w.write_image_data(rgb)
            .map_err(|e| PlotError::Encode(e.to_string()))?;
    }
    Ok(out)
}

/// What the backtest PNG shows: one panel per policy, top to bottom.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestLegend {
    /// Image width in pixels.
    pub width_px: u32,
    /// Image height in pixels.
    pub height_px: u32,
    /// Background colour.
    pub background: String,
    /// Arrival-rate colour (every panel).
    pub demand_color: String,
    /// Forecast band colour (panels of policies that forecast with intervals).
    pub band_color: String,
    /// Rolling attainment colour (every panel).
    pub attainment_color: String,
    /// Window of the rolling attainment, seconds of simulation.
    pub attainment_window_s: f64,
    /// Replica colours per variant, bottom of the stack first.
    pub variant_colors: Vec<(String, String)>,
    /// One panel per policy.
    pub panels: Vec<BacktestPanel>,
}

/// One policy's panel: arrivals over time, then replicas stacked per variant.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestPanel {
    /// Policy name.
    pub policy: String,
    /// Pixel rows of the panel, `[top, bottom)`.
    pub y_px: [u32; 2],
    /// The x axis, simulation seconds.
    pub x_s: [f64; 2],
    /// Arrival rate strip, req/s.
    pub demand: Strip,
    /// Replicas strip (stacked per variant).
    pub replicas: Strip,
    /// Rolling attainment strip: share of requests finished in the last
    /// `attainment_window_s` within both SLO bounds, y from 0 to 1.
    pub attainment: Strip,
}

/// Pixel height of one policy's panel.
pub const BACKTEST_PANEL_HEIGHT_PX: u32 = 330;

/// Rolling window of the attainment strip: 10 minutes, long enough that one sync's handful of
/// requests does not make the line jump, short enough to show a cold start's dip.
pub const ATTAINMENT_WINDOW_S: f64 = 600.0;

/// Share of requests within both SLO bounds among those finished in the `window_s` before
/// each timeline point (inclusive); `None` where none finished, so gaps are not drawn as 0.
pub fn rolling_attainment(
    timeline: &[crate::sim::metrics::TimelinePoint],
    window_s: f64,
) -> Vec<(f64, Option<f64>)> {
    let (mut finished, mut met) = (0u64, 0u64);
    let mut start = 0;
    timeline
        .iter()
        .map(|p| {
            finished += u64::from(p.finished);
            met += u64::from(p.met_slo);
            while timeline[start].t_s <= p.t_s - window_s {
                finished -= u64::from(timeline[start].finished);
                met -= u64::from(timeline[start].met_slo);
                start += 1;
            }
            (p.t_s, (finished > 0).then(|| met as f64 / finished as f64))
        })
        .collect()
}

/// Draws each report's timeline (they must have been run with a timeline): arrival rate,
/// replicas held per variant (stacked areas) and rolling attainment, one panel per policy,
/// sharing the y ranges so panels compare at a glance.
pub fn backtest_chart(
    reports: &[crate::sim::metrics::SimReport],
    variants: &[String],
) -> Result<(Vec<u8>, BacktestLegend), PlotError> {
    let n = reports.len().max(1) as u32;
    let (w, h) = (WIDTH_PX, BACKTEST_PANEL_HEIGHT_PX * n);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    let points = || reports.iter().flat_map(|r| r.timeline.iter());
    let x_end = points().map(|p| p.t_s).fold(0.0, f64::max).max(1.0);
    let x_range = [0.0, x_end];
    let dy = y_top(
        points()
            .map(|p| {
                p.forecast
                    .map_or(p.arrivals_per_s, |f| f.upper_rps.max(p.arrivals_per_s))
            })
            .fold(0.0, f64::max),
    );
    let ry = y_top(f64::from(
        points()
            .map(|p| p.replicas.iter().sum::<u32>())
            .max()
            .unwrap_or(0),
    ));
    let colors: Vec<RGBColor> = (0..variants.len())
        .map(|k| VARIANTS[k % VARIANTS.len()])
        .collect();
    let mut panels = Vec::new();
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&BACKGROUND).map_err(draw_err)?;
        for (i, (area, r)) in root
            .split_evenly((n as usize, 1))
            .iter()
            .zip(reports)
            .enumerate()
        {
            let inner = area.margin(8, 8, 8, 8);
            let third = (BACKTEST_PANEL_HEIGHT_PX as i32 - 16) / 3;
            let (d_area, rest) = inner.split_vertically(third);
            let (r_area, a_area) = rest.split_vertically(third);
            let d_area = d_area.margin(0, 3, 0, 0);
            let r_area = r_area.margin(3, 3, 0, 0);
            let a_area = a_area.margin(3, 0, 0, 0);
            let strip = |a: &DrawingArea<BitMapBackend, plotters::coord::Shift>, y: f64| {
                let (_, ys) = a.get_pixel_range();
                Strip {
                    y_px: [ys.start as u32, ys.end as u32],
                    y_range: [0.0, y],
                }
            };
            let top = i as u32 * BACKTEST_PANEL_HEIGHT_PX;
            panels.push(BacktestPanel {
                policy: r.name.clone(),
                y_px: [top, top + BACKTEST_PANEL_HEIGHT_PX],
                x_s: x_range,
                demand: strip(&d_area, dy),
                replicas: strip(&r_area, ry),
                attainment: strip(&a_area, 1.0),
            });
            let mut d = ChartBuilder::on(&d_area)
                .build_cartesian_2d(x_range[0]..x_range[1], 0.0..dy)
                .map_err(draw_err)?;
            frame(&mut d, x_range, dy)?;
            // The forecast band (policies that report one) under the arrivals: upper edge
            // forward, lower edge back, one polygon per run of syncs with a forecast.
            let bands: Vec<(f64, Option<crate::sim::metrics::ForecastBand>)> =
                r.timeline.iter().map(|p| (p.t_s, p.forecast)).collect();
            for run in bands.split(|(_, f)| f.is_none()) {
                let upper = run.iter().filter_map(|(t, f)| f.map(|f| (*t, f.upper_rps)));
                let lower = run
                    .iter()
                    .rev()
                    .filter_map(|(t, f)| f.map(|f| (*t, f.lower_rps)));
                let outline: Vec<(f64, f64)> = upper.chain(lower).collect();
                if outline.len() >= 4 {
                    d.draw_series(std::iter::once(Polygon::new(outline, BAND.filled())))
                        .map_err(draw_err)?;
                }
            }
            d.draw_series(LineSeries::new(
                r.timeline.iter().map(|p| (p.t_s, p.arrivals_per_s)),
                FORECAST.stroke_width(1),
            ))
            .map_err(draw_err)?;
            let mut c = ChartBuilder::on(&r_area)
                .build_cartesian_2d(x_range[0]..x_range[1], 0.0..ry)
                .map_err(draw_err)?;
            frame(&mut c, x_range, ry)?;
            // Top of the stack first, so each lower layer paints over the one above it.
            for k in (0..variants.len()).rev() {
                let cum = |p: &crate::sim::metrics::TimelinePoint| {
                    f64::from(p.replicas.iter().take(k + 1).sum::<u32>())
                };
                // Held until the next sync: a step function.
                let mut pts = Vec::new();
                for (j, p) in r.timeline.iter().enumerate() {
                    let next = r.timeline.get(j + 1).map_or(x_end, |q| q.t_s);
                    pts.push((p.t_s, cum(p)));
                    pts.push((next, cum(p)));
                }
                c.draw_series(AreaSeries::new(pts, 0.0, colors[k].filled()))
                    .map_err(draw_err)?;
            }
            let mut a = ChartBuilder::on(&a_area)
                .build_cartesian_2d(x_range[0]..x_range[1], 0.0..1.0)
                .map_err(draw_err)?;
            frame(&mut a, x_range, 1.0)?;
            // One line per run of points with data: a window with no finished request is a
            // gap, not a drop to 0.
            let rolling = rolling_attainment(&r.timeline, ATTAINMENT_WINDOW_S);
            for run in rolling.split(|(_, v)| v.is_none()) {
                a.draw_series(LineSeries::new(
                    run.iter().filter_map(|&(t, v)| v.map(|v| (t, v))),
                    ATTAINMENT.stroke_width(2),
                ))
                .map_err(draw_err)?;
            }
        }
        root.present().map_err(draw_err)?;
    }
    Ok((
        rgb,
        BacktestLegend {
            width_px: w,
            height_px: h,
            background: hex(BACKGROUND),
            demand_color: hex(FORECAST),
            band_color: hex(BAND),
            attainment_color: hex(ATTAINMENT),
            attainment_window_s: ATTAINMENT_WINDOW_S,
            variant_colors: variants
                .iter()
                .zip(&colors)
                .map(|(v, c)| (v.clone(), hex(*c)))
                .collect(),
            panels,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::metrics::TimelinePoint;

    fn point(t_s: f64, finished: u32, met_slo: u32) -> TimelinePoint {
        TimelinePoint {
            t_s,
            arrivals_per_s: 0.0,
            replicas: vec![],
            finished,
            met_slo,
            forecast: None,
        }
    }

    #[test]
    fn rolling_attainment_counts_requests_in_the_window_and_leaves_gaps_empty() {
        let timeline = [
            point(0.0, 10, 10),
            point(300.0, 10, 0),
            point(600.0, 0, 0),
            point(900.0, 0, 0),
            point(1200.0, 0, 0),
            point(1500.0, 4, 3),
        ];
        let got: Vec<Option<f64>> = rolling_attainment(&timeline, 600.0)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        // (600 s window, end inclusive, start exclusive): 10/10; 10/20; the point at 0 s
        // leaves at 600 s → 0/10; nothing finished in (300, 900] or (600, 1200]; 3/4.
        assert_eq!(
            got,
            [Some(1.0), Some(0.5), Some(0.0), None, None, Some(0.75)]
        );
    }
}
