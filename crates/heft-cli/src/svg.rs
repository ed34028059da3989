//! Hand-written SVG pictures of a run: the convergence curve and the heat
//! map of how far the search moved each weight.

use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 400.0;
const MARGIN: f64 = 60.0;

/// Draws best and mean fitness against the iteration.
pub fn convergence(iterations: &[u64], best: &[f64], mean: &[f64], fitness_name: &str) -> String {
    let finite = best.iter().chain(mean).copied().filter(|v| v.is_finite());
    let (mut low, mut high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !low.is_finite() {
        (low, high) = (0.0, 1.0);
    }
    if high - low < 1e-12 {
        high = low + 1e-6;
    }
    let last = iterations.last().copied().unwrap_or(1).max(1) as f64;
    let x = |i: u64| MARGIN + (WIDTH - 2.0 * MARGIN) * i as f64 / last;
    let y = |v: f64| HEIGHT - MARGIN - (HEIGHT - 2.0 * MARGIN) * (v - low) / (high - low);
    let line = |values: &[f64]| {
        iterations
            .iter()
            .zip(values)
            .filter(|(_, v)| v.is_finite())
            .map(|(&i, &v)| format!("{:.2},{:.2}", x(i), y(v)))
            .collect::<Vec<_>>()
            .join(" ")
    };

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let (x0, x1, y0, y1) = (MARGIN, WIDTH - MARGIN, MARGIN, HEIGHT - MARGIN);
    let _ = writeln!(
        svg,
        r#"<path d="M{x0},{y0} L{x0},{y1} L{x1},{y1}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">iteration</text>"#,
        WIDTH / 2.0,
        HEIGHT - 20.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="15" y="{}" transform="rotate(-90 15 {})" text-anchor="middle">{fitness_name}</text>"#,
        HEIGHT / 2.0,
        HEIGHT / 2.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="end">{high:.6}</text>"#,
        x0 - 4.0,
        y0 + 4.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="end">{low:.6}</text>"#,
        x0 - 4.0,
        y1
    );
    let _ = writeln!(
        svg,
        r#"<text x="{x0}" y="{}" text-anchor="middle">0</text>"#,
        y1 + 16.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="{x1}" y="{}" text-anchor="middle">{last}</text>"#,
        y1 + 16.0
    );
    let _ = writeln!(
        svg,
        r#"<polyline points="{}" fill="none" stroke="rgb(200,60,40)" stroke-width="2"/>"#,
        line(mean)
    );
    let _ = writeln!(
        svg,
        r#"<polyline points="{}" fill="none" stroke="rgb(30,90,200)" stroke-width="2"/>"#,
        line(best)
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="30" fill="rgb(30,90,200)">best</text><text x="{}" y="30" fill="rgb(200,60,40)">mean</text>"#,
        x1 - 90.0,
        x1 - 40.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// Largest number of heat-map cells per side; larger matrices are
/// aggregated by the maximum over blocks.
pub const MAX_CELLS: usize = 256;

/// Draws `|after - before|` of a `rows x cols` matrix as a heat map, white
/// for 0 and dark red for `bound`.
pub fn delta_heat_map(
    before: &[f32],
    after: &[f32],
    rows: usize,
    cols: usize,
    bound: f32,
    title: &str,
) -> String {
    let cell_rows = rows.clamp(1, MAX_CELLS);
    let cell_cols = cols.clamp(1, MAX_CELLS);
    let mut cells = vec![0.0f32; cell_rows * cell_cols];
    for r in 0..rows {
        for c in 0..cols {
            let i = r * cols + c;
            let delta = (after[i] - before[i]).abs();
            let cell = (r * cell_rows / rows) * cell_cols + c * cell_cols / cols;
            cells[cell] = cells[cell].max(delta);
        }
    }
    let size = 4.0f64
        .max(
            (600.0 / cell_cols as f64)
                .min(600.0 / cell_rows as f64)
                .floor(),
        )
        .min(24.0);
    let (width, height) = (cell_cols as f64 * size, cell_rows as f64 * size);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">"#,
        width + 20.0,
        height + 60.0
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="20">|W_best - W0| of {title} ({rows} x {cols}); white 0, dark red {bound}</text>"#
    );
    let _ = writeln!(
        svg,
        r#"<g transform="translate(10,40)" shape-rendering="crispEdges">"#
    );
    for (index, &value) in cells.iter().enumerate() {
        let level = (value / bound).clamp(0.0, 1.0);
        let red = 255.0 - 115.0 * level;
        let other = 255.0 * (1.0 - level);
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="{size}" height="{size}" fill="rgb({:.0},{:.0},{:.0})"/>"#,
            (index % cell_cols) as f64 * size,
            (index / cell_cols) as f64 * size,
            red,
            other,
            other
        );
    }
    svg.push_str("</g>\n</svg>\n");
    svg
}
