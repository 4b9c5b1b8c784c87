//! The dashboard's sign-in chart as SVG geometry, computed on the server.
//!
//! [`Chart::bars`] turns buckets of counts into integer coordinates, axis
//! labels and tooltips; the template writes them into an inline `<svg>`
//! (escaped like everything else). The chart's input is numbers and times
//! only, so no user data can reach the SVG, and nothing in it needs script
//! or inline style: colours come from classes in the stylesheet, which the
//! CSP allows.

use crate::service::site::dashboard::ActivityPoint;

/// The drawing's coordinate system (the SVG scales to its container).
pub const WIDTH: u32 = 720;
pub const HEIGHT: u32 = 220;
const LEFT: u32 = 50;
const RIGHT: u32 = WIDTH - 22;
const TOP: u32 = 12;
const BOTTOM: u32 = HEIGHT - 30;

/// One bar: a rectangle and its tooltip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// `ok` (sign-ins) or `fail` (failed sign-ins): a stylesheet class.
    pub class: &'static str,
    pub title: String,
}

/// A horizontal grid line with its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GridLine {
    pub y: u32,
    pub label: String,
}

/// A time label under the x axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AxisLabel {
    pub x: u32,
    pub text: String,
}

/// Which way the buckets are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Hourly,
    Daily,
}

#[derive(Clone, Debug)]
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub left: u32,
    pub right: u32,
    pub top: u32,
    pub bottom: u32,
    pub label_y: u32,
    pub bars: Vec<Bar>,
    pub grid: Vec<GridLine>,
    pub labels: Vec<AxisLabel>,
    pub successes: u64,
    pub failures: u64,
    /// The chart in words, for screen readers (`aria-label`).
    pub summary: String,
}

/// The smallest "nice" step (1, 2 or 5 times a power of ten) at least `raw`.
fn nice_step(raw: u64) -> u64 {
    let mut magnitude = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = m * magnitude;
            if step >= raw {
                return step;
            }
        }
        magnitude = match magnitude.checked_mul(10) {
            Some(m) => m,
            None => return u64::MAX / 4,
        };
    }
}

fn format_time(ts: i64, format: &[time::format_description::BorrowedFormatItem<'_>]) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl Chart {
    /// Lays out `points` (in time order) as pairs of bars: sign-ins and
    /// failed sign-ins per bucket, on a shared scale of four grid steps.
    pub fn bars(points: &[ActivityPoint], scale: Scale) -> Chart {
        let n = points.len().max(1) as u32;
        let plot_width = RIGHT - LEFT;
        let plot_height = BOTTOM - TOP;
        let slot = plot_width / n;
        let gap = (slot / 6).max(1);
        let bar_width = (slot.saturating_sub(2 * gap) / 2).max(1);
        let peak = points.iter().map(|p| p.successes.max(p.failures)).max().unwrap_or(0);
        let step = nice_step(peak.div_ceil(4).max(1));
        let top_value = step * 4;
        let height_of = |v: u64| -> u32 {
            if v == 0 {
                return 0;
            }
            let h = (u128::from(v) * u128::from(plot_height)).div_ceil(u128::from(top_value));
            u32::try_from(h).unwrap_or(plot_height).clamp(1, plot_height)
        };
        let (label_every, label_format, title_format) = match scale {
            Scale::Hourly => (
                3,
                time::macros::format_description!("[hour]:00"),
                time::macros::format_description!("[year]-[month]-[day] [hour]:00 UTC"),
            ),
            Scale::Daily => (
                5,
                time::macros::format_description!("[month repr:short] [day padding:none]"),
                time::macros::format_description!("[weekday repr:short] [year]-[month]-[day]"),
            ),
        };
        let mut bars = Vec::with_capacity(points.len() * 2);
        let mut labels = Vec::new();
        for (i, p) in points.iter().enumerate() {
            let i = i as u32;
            let x0 = LEFT + i * slot + gap;
            let when = format_time(p.start, title_format);
            let title = format!(
                "{when}: {}, {}",
                plural(p.successes, "sign-in", "sign-ins"),
                plural(p.failures, "failed", "failed")
            );
            for (offset, value, class) in [(0, p.successes, "ok"), (bar_width, p.failures, "fail")] {
                let height = height_of(value);
                bars.push(Bar {
                    x: x0 + offset,
                    y: BOTTOM - height,
                    width: bar_width,
                    height,
                    class,
                    title: title.clone(),
                });
            }
            // Label the last bucket (now) and every `label_every`-th one
            // counting back from it, so the labels line up with "now".
            let from_end = n - 1 - i;
            if from_end.is_multiple_of(label_every) {
                labels.push(AxisLabel {
                    x: LEFT + i * slot + slot / 2,
                    text: format_time(p.start, label_format),
                });
            }
        }
        let grid = (0..=4u32)
            .map(|k| GridLine {
                y: BOTTOM - plot_height * k / 4,
                label: (step * u64::from(k)).to_string(),
            })
            .collect();
        let successes = points.iter().map(|p| p.successes).sum();
        let failures = points.iter().map(|p| p.failures).sum();
        let span = match scale {
            Scale::Hourly => "per hour over the last 24 hours",
            Scale::Daily => "per day over the last 30 days",
        };
        Chart {
            width: WIDTH,
            height: HEIGHT,
            left: LEFT,
            right: RIGHT,
            top: TOP,
            bottom: BOTTOM,
            label_y: HEIGHT - 10,
            bars,
            grid,
            labels,
            successes,
            failures,
            summary: format!(
                "Sign-ins and failed sign-ins {span}: {} and {} in total",
                plural(successes, "sign-in", "sign-ins"),
                plural(failures, "failure", "failures")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[(u64, u64)]) -> Vec<ActivityPoint> {
        values
            .iter()
            .enumerate()
            .map(|(i, (s, f))| ActivityPoint {
                start: 1_795_430_400 + i as i64 * 3_600,
                successes: *s,
                failures: *f,
            })
            .collect()
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(1), 1);
        assert_eq!(nice_step(3), 5);
        assert_eq!(nice_step(7), 10);
        assert_eq!(nice_step(11), 20);
        assert_eq!(nice_step(260), 500);
    }

    #[test]
    fn bars_scale_to_the_plot_and_stay_inside_it() {
        let mut values = vec![(0, 0); 24];
        values[3] = (40, 2);
        values[23] = (1, 0);
        let chart = Chart::bars(&points(&values), Scale::Hourly);
        assert_eq!(chart.bars.len(), 48);
        // peak 40 -> step 10 -> top 40: the tallest bar fills the plot.
        let tallest = chart.bars.iter().map(|b| b.height).max().unwrap();
        assert_eq!(tallest, BOTTOM - TOP);
        for b in &chart.bars {
            assert!(b.x >= LEFT && b.x + b.width <= RIGHT, "{b:?}");
            assert!(b.y >= TOP && b.y + b.height == BOTTOM, "{b:?}");
        }
        // A single event is still visible.
        assert!(chart.bars[46].height >= 1);
        assert_eq!(chart.bars[0].height, 0);
        assert_eq!(chart.grid.last().unwrap().label, "40");
        assert_eq!((chart.successes, chart.failures), (41, 2));
        assert!(
            chart.bars[6].title.contains("40 sign-ins, 2 failed"),
            "{}",
            chart.bars[6].title
        );
        // Labels every third hour, the last one on the last bucket.
        assert_eq!(chart.labels.len(), 8);
    }

    #[test]
    fn an_empty_chart_still_has_a_scale() {
        let chart = Chart::bars(&points(&[(0, 0); 30]), Scale::Daily);
        assert!(chart.bars.iter().all(|b| b.height == 0));
        assert_eq!(chart.grid.len(), 5);
        assert_eq!(chart.grid[4].label, "4");
        assert!(chart.summary.contains("0 sign-ins"));
    }
}
