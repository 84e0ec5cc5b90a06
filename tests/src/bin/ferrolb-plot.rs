//! Draws a chart for the benchmark scripts: reads one chart as JSON on stdin (`{"lines": {…}}`
//! or `{"strip": {…}}`, see `ferrolb_tests::plot`) and writes the SVG to stdout.

use std::io::Read as _;

fn main() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let chart: ferrolb_tests::plot::Chart = serde_json::from_str(&input)?;
    print!("{}", chart.svg());
    Ok(())
}
