//! The SVG plots: for each workload, one bar per MVVM policy (and
//! Wasmtime) giving its median execution time as a ratio to the native
//! build; and checkpoint and restore latency against memory size (the
//! `memfill` sweep), for MVVM and for CRIU.

use crate::runner::Results;
use crate::stats::Summary;
use crate::{BenchError, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Ratio of the median time of `variant` to native's, per workload.
fn ratios(res: &Results, variant: &str) -> Vec<Option<f64>> {
    res.workloads
        .iter()
        .map(|w| {
            let base = Summary::of(&res.samples(w, "native"))?.median;
            let x = Summary::of(&res.samples(w, variant))?.median;
            (base > 0.0).then(|| x / base)
        })
        .collect()
}

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Plot(e.to_string())
}

/// Draws the plot into `path`; returns `false` (and draws nothing) when no
/// variant other than native has figures.
pub fn ratio_plot(path: &Path, res: &Results) -> Result<bool> {
    let series: Vec<(String, Vec<Option<f64>>)> = res
        .variants
        .iter()
        .filter(|v| *v != "native")
        .map(|v| (v.clone(), ratios(res, v)))
        .filter(|(_, r)| r.iter().any(Option::is_some))
        .collect();
    if series.is_empty() || res.workloads.is_empty() {
        return Ok(false);
    }
    let nw = res.workloads.len();
    let ymax = series
        .iter()
        .flat_map(|(_, r)| r.iter().flatten().copied())
        .fold(1.0f64, f64::max)
        * 1.15;
    let width = (nw as u32 * (20 + 12 * series.len() as u32)).max(900) + 120;
    let root = SVGBackend::new(path, (width, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Execution time relative to native (lower is better)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(110)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..nw as f64, 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("time / native time")
        .draw()
        .map_err(err)?;

    let group = 0.8 / series.len() as f64;
    for (si, (name, values)) in series.iter().enumerate() {
        let color = Palette99::pick(si).to_rgba();
        let bars = values.iter().enumerate().filter_map(|(wi, v)| {
            let v = (*v)?;
            let x0 = wi as f64 + 0.1 + si as f64 * group;
            Some(Rectangle::new(
                [(x0, 0.0), (x0 + group * 0.9, v)],
                color.filled(),
            ))
        });
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    // The native baseline.
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 1.0), (nw as f64, 1.0)],
            BLACK,
        )))
        .map_err(err)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;

    // Workload names under their groups, rotated to fit.
    let style = TextStyle::from(("sans-serif", 13).into_font())
        .transform(FontTransform::Rotate90)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (wi, w) in res.workloads.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(wi as f64 + 0.5, 0.0));
        root.draw(&Text::new(w.to_string(), (px, py + 8), style.clone()))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(true)
}

/// The memory size (MiB) of a `memfill` sweep trial, from its label
/// (`memfill 256 MiB`).
pub fn sweep_mib(label: &str) -> Option<f64> {
    let size = label.strip_prefix("memfill ")?.strip_suffix(" MiB")?;
    size.parse().ok()
}

/// One line of the latency plot: its name and its (MiB, ms) points.
type Line = (&'static str, Vec<(f64, f64)>);

/// The lines of the latency plot, from the memfill sweep: MVVM checkpoint
/// and restore to the first instruction, CRIU dump (command and frozen
/// time) and restore to the first instruction (only trials that restored
/// correctly).
fn latency_lines(res: &Results) -> Vec<Line> {
    let mvvm = |f: fn(&crate::cr::CrRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        res.checkpoints
            .iter()
            .filter(|c| c.checksum_ok)
            .filter_map(|c| Some((sweep_mib(&c.label)?, f(c)?)))
            .collect()
    };
    let criu = |f: fn(&crate::criu::CriuRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        res.criu
            .iter()
            .filter(|c| c.checksum_ok)
            .filter_map(|c| Some((sweep_mib(&c.label)?, f(c)? * 1000.0)))
            .collect()
    };
    // The order fixes each line's colour in latency_plot.
    let lines: Vec<Line> = vec![
        (
            "MVVM checkpoint (trigger to durable snapshot)",
            mvvm(|c| c.summary.checkpoint_ms),
        ),
        (
            "MVVM restore to first instruction (downtime - checkpoint)",
            mvvm(|c| match (c.downtime_ms, c.summary.checkpoint_ms) {
                (Some(d), Some(k)) if d > k => Some(d - k),
                _ => None,
            }),
        ),
        ("CRIU dump (command wall time)", criu(|c| c.dump_s)),
        (
            "CRIU dump (task frozen)",
            criu(|c| c.stats.frozen_ms.map(|v| v / 1000.0)),
        ),
        (
            "CRIU restore to first instruction",
            criu(|c| c.restore_first_s),
        ),
    ];
    lines
        .into_iter()
        .map(|(n, mut v)| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            (n, v)
        })
        .collect()
}

/// Draws checkpoint and restore latency against memory size into `path`
/// (log-log); returns `false` (and draws nothing) without sweep figures.
pub fn latency_plot(path: &Path, res: &Results) -> Result<bool> {
    let lines = latency_lines(res);
    if lines.iter().all(|(_, v)| v.is_empty()) {
        return Ok(false);
    }
    let points = || lines.iter().flat_map(|(_, v)| v.iter().copied());
    let (xmin, xmax) = points().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| {
        (lo.min(x), hi.max(x))
    });
    let (ymin, ymax) = points().fold((f64::MAX, f64::MIN), |(lo, hi), (_, y)| {
        (lo.min(y), hi.max(y))
    });
    let x_range = (xmin / 1.5).max(0.1)..(xmax * 1.5);
    let y_range = (ymin / 2.0).max(0.001)..(ymax * 2.0);
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Checkpoint and restore latency against memory size (memfill)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.log_scale(), y_range.log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("memory filled by the program (MiB, log scale)")
        .y_desc("latency (ms, log scale)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    // MVVM in warm colours, CRIU in cold ones.
    let palette = [
        RGBColor(200, 30, 30),
        RGBColor(230, 130, 0),
        RGBColor(30, 70, 200),
        RGBColor(120, 160, 230),
        RGBColor(0, 150, 150),
    ];
    for (i, (name, pts)) in lines.iter().enumerate() {
        if pts.is_empty() {
            continue;
        }
        let color = palette[i % palette.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(true)
}

/// Draws migration downtime against memory size into `path`, one line per
/// `(name, [(MiB, ms)])` (MVVM's first, in warm colours, then CRIU's in
/// cold ones); x on a log scale, y too when the figures span more than a
/// factor of 20. Returns `false` (and draws nothing) without figures.
pub fn downtime_plot(path: &Path, lines: &[(String, Vec<(f64, f64)>)]) -> Result<bool> {
    let points = || lines.iter().flat_map(|(_, v)| v.iter().copied());
    if points().next().is_none() {
        return Ok(false);
    }
    let (xmin, xmax) = points().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| {
        (lo.min(x), hi.max(x))
    });
    let (ymin, ymax) = points().fold((f64::MAX, f64::MIN), |(lo, hi), (_, y)| {
        (lo.min(y), hi.max(y))
    });
    let log_y = ymin > 0.0 && ymax / ymin > 20.0;
    let x_range = ((xmin / 1.5).max(0.1)..(xmax * 1.5)).log_scale();
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(
            "Migration downtime against memory size (memfill, slow writer)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70);
    let mvvm_palette = [
        RGBColor(200, 30, 30),
        RGBColor(230, 130, 0),
        RGBColor(150, 40, 120),
        RGBColor(240, 90, 140),
    ];
    let criu_palette = [
        RGBColor(30, 70, 200),
        RGBColor(0, 150, 150),
        RGBColor(120, 160, 230),
    ];
    let colour = |i: usize, name: &str| {
        let (p, k): (&[RGBColor], usize) = if name.starts_with("CRIU") {
            (
                &criu_palette,
                lines[..i]
                    .iter()
                    .filter(|(n, _)| n.starts_with("CRIU"))
                    .count(),
            )
        } else {
            (
                &mvvm_palette,
                lines[..i]
                    .iter()
                    .filter(|(n, _)| !n.starts_with("CRIU"))
                    .count(),
            )
        };
        p[k % p.len()]
    };
    macro_rules! draw {
        ($chart:expr, $ydesc:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .x_desc("memory filled by the program (MiB, log scale)")
                .y_desc($ydesc)
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| {
                    if *v >= 1.0 {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.2}")
                    }
                })
                .draw()
                .map_err(err)?;
            for (i, (name, pts)) in lines.iter().enumerate() {
                if pts.is_empty() {
                    continue;
                }
                let color = colour(i, name);
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                    .map_err(err)?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
                    .map_err(err)?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(err)?;
        }};
    }
    if log_y {
        let chart = builder
            .build_cartesian_2d(x_range, ((ymin / 2.0)..(ymax * 2.0)).log_scale())
            .map_err(err)?;
        draw!(chart, "downtime (ms, median, log scale)");
    } else {
        let chart = builder
            .build_cartesian_2d(x_range, 0f64..(ymax * 1.15))
            .map_err(err)?;
        draw!(chart, "downtime (ms, median)");
    }
    root.present().map_err(err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Measurement;
    use crate::runner::RunRecord;

    #[test]
    fn draws_an_svg_with_one_bar_per_variant() {
        let mut r = Results {
            workloads: vec!["a", "b"],
            variants: vec!["native".into(), "mvvm-none".into()],
            ..Default::default()
        };
        for (w, v, t) in [
            ("a", "native", 1.0),
            ("a", "mvvm-none", 2.0),
            ("b", "native", 1.0),
            ("b", "mvvm-none", 3.0),
        ] {
            r.runs.push(RunRecord {
                workload: w,
                variant: v.to_owned(),
                round: 1,
                warmup: false,
                m: Measurement {
                    wall_s: t,
                    user_s: t,
                    sys_s: 0.0,
                    max_rss_kib: 1,
                    exit_code: Some(0),
                    timed_out: false,
                },
                checksum: Some("0".into()),
                checksum_ok: true,
                startup_ms: None,
            });
        }
        let dir = std::env::temp_dir().join(format!("mvvm-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.svg");
        assert!(ratio_plot(&path, &r).unwrap());
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("mvvm-none"),
            "{svg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();

        r.variants.truncate(1);
        assert!(!ratio_plot(&dir.join("none.svg"), &r).unwrap());
    }

    #[test]
    fn the_latency_plot_has_a_line_per_tool() {
        assert_eq!(sweep_mib("memfill 256 MiB"), Some(256.0));
        assert_eq!(sweep_mib("memfill"), None);
        let mut r = Results::default();
        let dir = std::env::temp_dir().join(format!("mvvm-bench-lat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!latency_plot(&dir.join("empty.svg"), &r).unwrap());
        for mib in [64u64, 256, 1024] {
            r.criu.push(crate::criu::CriuRecord {
                label: format!("memfill {mib} MiB"),
                dump_s: Some(mib as f64 / 1000.0),
                restore_first_s: Some(0.05),
                checksum_ok: true,
                ..Default::default()
            });
        }
        let path = dir.join("lat.svg");
        assert!(latency_plot(&path, &r).unwrap());
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.contains("CRIU dump") && !svg.contains("MVVM checkpoint"),
            "{svg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_downtime_plot_has_a_line_per_mode_and_a_log_axis_when_needed() {
        let dir = std::env::temp_dir().join(format!("mvvm-bench-dt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!downtime_plot(&dir.join("empty.svg"), &[]).unwrap());
        let lines = vec![
            (
                "MVVM pre-copy (--live), loopback".to_owned(),
                vec![(64.0, 2.0), (1024.0, 3.0)],
            ),
            (
                "CRIU stop-and-copy, loopback".to_owned(),
                vec![(64.0, 900.0), (1024.0, 9000.0)],
            ),
        ];
        let path = dir.join("dt.svg");
        assert!(downtime_plot(&path, &lines).unwrap());
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.contains("CRIU stop-and-copy") && svg.contains("median, log scale"),
            "{svg}"
        );
        // Close figures: a linear axis.
        let near = vec![("a".to_owned(), vec![(64.0, 10.0), (256.0, 12.0)])];
        assert!(downtime_plot(&path, &near).unwrap());
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.contains("downtime (ms, median)") && !svg.contains("median, log scale"),
            "{svg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
