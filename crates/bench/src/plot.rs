//! SVG plots of the results.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

/// A named line of `(x, y)` points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
}

const SIZE: (u32, u32) = (860, 520);

fn color(i: usize) -> RGBColor {
    [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(86, 86, 86),
    ][i % 5]
}

fn bounds(series: &[Series], pick: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    let values = series.iter().flat_map(|s| s.points.iter().map(&pick));
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo.is_finite() {
        (lo, hi)
    } else {
        (1.0, 10.0)
    }
}

/// Axis labels without needless decimals.
fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

macro_rules! draw_lines {
    ($root:expr, $chart:expr, $series:expr, $x_desc:expr, $y_desc:expr, $marks:expr) => {{
        let mut chart = $chart;
        chart
            .configure_mesh()
            .x_desc($x_desc)
            .y_desc($y_desc)
            .x_label_formatter(&|v: &f64| number(*v))
            .y_label_formatter(&|v: &f64| number(*v))
            .max_light_lines(2)
            .draw()
            .map_err(|e| anyhow!("{e:?}"))?;
        for (i, s) in $series.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                .map_err(|e| anyhow!("{e:?}"))?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            if $marks {
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, c.filled())))
                    .map_err(|e| anyhow!("{e:?}"))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow!("{e:?}"))?;
        $root.present().map_err(|e| anyhow!("{e:?}"))?;
    }};
}

/// Latency CDFs: x is latency in ms on a log scale, y the fraction of deliveries.
pub fn latency_cdf(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
    let (lo, hi) = bounds(series, |p| p.0);
    let chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((lo.max(0.001) * 0.8..hi * 1.25).log_scale(), 0.0..1.0)
        .map_err(|e| anyhow!("{e:?}"))?;
    draw_lines!(
        root,
        chart,
        series,
        "latency (ms, log scale)",
        "fraction of deliveries",
        false
    );
    Ok(())
}

/// A sweep: x is the number of clients (log scale), y linear or log.
pub fn sweep(
    path: &Path,
    title: &str,
    y_desc: &str,
    log_y: bool,
    series: &[Series],
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
    let (xlo, xhi) = bounds(series, |p| p.0);
    let (ylo, yhi) = bounds(series, |p| p.1);
    let x = (xlo * 0.8)..(xhi * 1.25);
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70);
    if log_y {
        let chart = builder
            .build_cartesian_2d(
                x.log_scale(),
                (ylo.max(0.001) * 0.8..yhi * 1.25).log_scale(),
            )
            .map_err(|e| anyhow!("{e:?}"))?;
        draw_lines!(root, chart, series, "clients (log scale)", y_desc, true);
    } else {
        let chart = builder
            .build_cartesian_2d(x.log_scale(), 0.0..yhi * 1.15)
            .map_err(|e| anyhow!("{e:?}"))?;
        draw_lines!(root, chart, series, "clients (log scale)", y_desc, true);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_written_as_svg() {
        let dir = tempfile::tempdir().unwrap();
        let series = vec![
            Series {
                label: "a".into(),
                points: vec![(0.5, 0.1), (1.0, 0.5), (4.0, 1.0)],
            },
            Series {
                label: "b".into(),
                points: vec![(2.0, 0.2), (8.0, 1.0)],
            },
        ];
        let cdf = dir.path().join("cdf.svg");
        latency_cdf(&cdf, "t", &series).unwrap();
        let sweep_path = dir.path().join("sweep.svg");
        sweep(&sweep_path, "t", "y", true, &series).unwrap();
        sweep(&sweep_path, "t", "y", false, &series).unwrap();
        for p in [cdf, sweep_path] {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.starts_with("<svg") && text.contains("</svg>"));
        }
        // No data at all still draws an empty chart rather than failing.
        latency_cdf(&dir.path().join("empty.svg"), "t", &[]).unwrap();
    }
}
