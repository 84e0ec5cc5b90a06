//! The small statistics the benchmark binaries print.

use std::time::Duration;

/// The value at fraction `p` (0–1) of `sorted`, rounding the position to the nearest sample.
/// Panics on an empty slice.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Whole milliseconds, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_sample() {
        let v: Vec<Duration> = (1..=5).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(3));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(5));
        assert_eq!(percentile(&v, 0.0), Duration::from_millis(1));
        assert_eq!(ms(Duration::from_micros(12_400)), "12 ms");
    }
}
