//! Small statistics shared by the benchmark programs.

/// The median of `v` (sorted in place): the middle value, or the mean of the two middle ones;
/// NaN when `v` is empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}
