//! `--plot DIR`: SVG charts of the run (plotters, SVG backend only). Each chart is drawn only
//! if its scenario ran.

use crate::scenarios::{churn, hot_add, memory, metrics, waste};
use crate::table::{Report, Value};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// The error type of the drawing calls.
type Error = Box<dyn std::error::Error>;

const SIZE: (u32, u32) = (960, 600);

/// A number of `peer` in `key`.
fn num(r: &Report, peer: &str, key: &str) -> Option<f64> {
    match r.get(peer, key)? {
        Value::Num(x) if x.is_finite() => Some(*x),
        _ => None,
    }
}

/// The thread counts measured by `scenario`, from its per-thread-count keys `<prefix><n>t<suffix>`.
fn thread_counts(r: &Report, prefix: &str, suffix: &str) -> Vec<usize> {
    let mut v: Vec<usize> = r
        .columns
        .iter()
        .filter_map(|c| {
            c.key
                .strip_prefix(prefix)?
                .strip_suffix(suffix)?
                .strip_suffix('t')
        })
        .filter_map(|n| n.parse().ok())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// One line per row: `(row, [(threads, value)])`.
type Series = Vec<(String, Vec<(f64, f64)>)>;

/// The rows' values of `key(n)` at each thread count, mapped by `f(n, value)`.
fn series(
    r: &Report,
    threads: &[usize],
    key: impl Fn(usize) -> &'static str,
    f: impl Fn(f64, f64) -> f64,
) -> Series {
    r.rows
        .iter()
        .filter_map(|row| {
            let pts: Vec<(f64, f64)> = threads
                .iter()
                .filter_map(|&n| num(r, row.peer, key(n)).map(|v| (n as f64, f(n as f64, v))))
                .collect();
            (!pts.is_empty()).then(|| (row.peer.to_string(), pts))
        })
        .collect()
}

/// Draws one line with points per series, and the legend at `legend`.
fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    data: &Series,
    legend: SeriesLabelPosition,
) -> Result<(), Error>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, pts)) in data.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}

/// A chart of one line per row against the thread count (log2 axis).
fn line_chart(file: &Path, title: &str, ylabel: &str, data: &Series) -> Result<(), Error> {
    let root = SVGBackend::new(file, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let xs = data.iter().flat_map(|s| s.1.iter().map(|p| p.0));
    let (xmin, xmax) = xs.fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    let (xmin, xmax) = if xmin < xmax {
        (xmin, xmax)
    } else {
        (xmin * 0.5, xmax * 2.0)
    };
    let ymax = data
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((xmin..xmax).log_scale(), 0.0..ymax)?;
    chart
        .configure_mesh()
        .x_desc("threads")
        .y_desc(ylabel)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    draw_lines(&mut chart, data, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(())
}

/// Horizontal bars, one group per row, one bar per `(label, key)`, on a log axis.
fn bar_chart(
    file: &Path,
    title: &str,
    xlabel: &str,
    rows: &[(String, Vec<Option<f64>>)],
    bars: &[&str],
) -> Result<(), Error> {
    let root = SVGBackend::new(file, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let vals = rows.iter().flat_map(|r| r.1.iter().flatten().copied());
    let (lo, hi) = vals.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = (lo.min(hi).max(1e-3) / 2.0, hi.max(lo) * 3.0);
    let n = rows.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(230)
        .build_cartesian_2d((lo..hi).log_scale(), -0.5..n - 0.5)?;
    chart
        .configure_mesh()
        .x_desc(xlabel)
        .disable_y_mesh()
        .y_labels(0)
        .y_label_formatter(&|_| String::new())
        .draw()?;
    let h = 0.8 / bars.len() as f64;
    for (b, label) in bars.iter().enumerate() {
        let color = Palette99::pick(b).to_rgba();
        chart
            .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
                let v = r.1.get(b).copied().flatten()?;
                let y0 = i as f64 - 0.4 + b as f64 * h;
                Some(Rectangle::new(
                    [(lo, y0), (v, y0 + h * 0.9)],
                    color.filled(),
                ))
            }))?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
        // The value at the end of each bar.
        chart.draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
            let v = r.1.get(b).copied().flatten()?;
            let y = i as f64 - 0.4 + (b as f64 + 0.45) * h;
            Some(Text::new(
                format!(" {v:.0}"),
                (v, y),
                TextStyle::from(("sans-serif", 11).into_font())
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))
        }))?;
    }
    // The rows' names, right-aligned left of the plotting area.
    let style =
        TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, r) in rows.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(lo, i as f64));
        root.draw(&Text::new(r.0.clone(), (px - 6, py), style.clone()))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Resident memory of each row through the free-and-compact cycle (log axis).
fn cycle_chart(file: &Path, title: &str, data: &Series) -> Result<(), Error> {
    let root = SVGBackend::new(file, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let ys = data.iter().flat_map(|s| s.1.iter().map(|p| p.1));
    let (lo, hi) = ys.fold((f64::INFINITY, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
    let (lo, hi) = (lo.min(hi).max(1e-3) / 2.0, hi.max(lo) * 2.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.2..3.4, (lo..hi).log_scale())?;
    let stages = ["all live", "90% freed", "compact + trim"];
    chart
        .configure_mesh()
        .y_desc("resident MiB (RSS delta + live handles)")
        .disable_x_mesh()
        // Ticks every 0.2; the formatter names the three stages and leaves the rest blank.
        .x_labels(19)
        .x_label_formatter(&|x: &f64| {
            let i = x.round();
            if (*x - i).abs() < 0.05 && (0.0..=2.0).contains(&i) {
                stages[i as usize].to_string()
            } else {
                String::new()
            }
        })
        .draw()?;
    draw_lines(&mut chart, data, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

/// Writes every chart whose scenario ran into `dir`; returns the files written.
///
/// # Errors
/// Creating `dir` or drawing a chart failed.
pub fn write_all(r: &Report, dir: &Path, machine: &str) -> Result<Vec<String>, Error> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut out = |name: &str| {
        let p = dir.join(name);
        written.push(p.display().to_string());
        p
    };
    let t = thread_counts(r, "hot_add_", "_ns");
    if !t.is_empty() {
        let data = series(r, &t, hot_add::ns_key, |n, ns| n * 1e3 / ns);
        let title = format!("hot-add: one counter, all threads adding ({machine})");
        line_chart(
            &out("hot-add-throughput.svg"),
            &title,
            "M adds/s (threads x 1/(ns of CPU time per add))",
            &data,
        )?;
    }
    let t = thread_counts(r, "metrics_", "_ns");
    if !t.is_empty() {
        let data = series(r, &t, metrics::ns_key, |n, ns| n * 1e3 / ns);
        let title = format!("metrics::counter! increments, one counter ({machine})");
        line_chart(
            &out("metrics-throughput.svg"),
            &title,
            "M increments/s (threads x 1/(ns of CPU time))",
            &data,
        )?;
    }
    let t = thread_counts(r, "churn_", "_kops");
    if !t.is_empty() {
        let data = series(r, &t, churn::kops_key, |_, k| k / 1e3);
        let title = format!("churn: create 4 counters, add, sum, destroy ({machine})");
        line_chart(
            &out("churn-throughput.svg"),
            &title,
            "M operations/s (wall time)",
            &data,
        )?;
    }
    let bytes: Vec<(String, Vec<Option<f64>>)> = r
        .rows
        .iter()
        .map(|row| {
            let v = vec![
                num(r, row.peer, memory::BYTES_KEY),
                num(
                    r,
                    row.peer,
                    memory::bytes_key(Some(memory::SIMULATED_CPUS[0])),
                ),
            ];
            (row.peer.to_string(), v)
        })
        .filter(|(_, v)| v.iter().any(Option::is_some))
        .collect();
    if !bytes.is_empty() {
        let title = format!("resident bytes per counter, 2 CPUs writing ({machine})");
        let labels = [
            "built for this machine".to_string(),
            format!("built for {} CPUs", memory::SIMULATED_CPUS[0]),
        ];
        bar_chart(
            &out("bytes-per-counter.svg"),
            &title,
            "bytes per counter (log)",
            &bytes,
            &[&labels[0], &labels[1]],
        )?;
    }
    let cycle: Series = r
        .rows
        .iter()
        .filter_map(|row| {
            let keys = [
                "waste_full_mib",
                "waste_after_free_mib",
                "waste_after_compact_mib",
            ];
            let pts: Option<Vec<(f64, f64)>> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| num(r, row.peer, k).map(|v| (i as f64, v)))
                .collect();
            // A log axis has no room for the RSS falling below the baseline (the memory
            // scenario's own caveat): such points are left out.
            let pts: Vec<(f64, f64)> = pts?.into_iter().filter(|p| p.1 > 0.0).collect();
            (!pts.is_empty()).then(|| (row.peer.to_string(), pts))
        })
        .collect();
    if !cycle.is_empty() {
        let title = format!(
            "{}: create, free 90% at random, compact ({machine})",
            waste::NAME
        );
        cycle_chart(&out("memory-cycle.svg"), &title, &cycle)?;
    }
    Ok(written)
}
