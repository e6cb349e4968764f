//! The environment knobs of the stress tests: `PCPU_STRESS_SCALE` scales their sizes (CI sets
//! it low under valgrind, Miri and in VMs), `PCPU_STRESS_SECS` bounds the time-bounded ones.

/// The `f64` in environment variable `name`, if it parses, is finite and positive; else
/// `default`.
pub fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .unwrap_or(default)
}

/// `PCPU_STRESS_SCALE` (default 1.0).
pub fn stress_scale() -> f64 {
    env_f64("PCPU_STRESS_SCALE", 1.0)
}

/// `PCPU_STRESS_SECS` (default `default`): how long a time-bounded stress test runs.
pub fn stress_secs(default: f64) -> f64 {
    env_f64("PCPU_STRESS_SECS", default)
}

/// `n` scaled by [`stress_scale`], at least 1.
pub fn scaled(n: u64) -> u64 {
    ((n as f64 * stress_scale()) as u64).max(1)
}

/// The number of proptest cases for a model test whose own default is `default`: the
/// `PROPTEST_CASES` environment variable when set (CI cuts it down under Miri), else
/// `default`. (`ProptestConfig::with_cases` alone would ignore the variable.)
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &u32| n > 0)
        .unwrap_or(default)
}
