//! The one backoff rule every retry in Vigía follows (failed jobs, e-mail and webhook
//! deliveries): exponential with "equal jitter".

use std::time::Duration;

use rand::Rng;

/// The delay before retrying after failed attempt `attempt` (from 1): `base · 2^(attempt-1)`,
/// capped at `max`, then a random point in its upper half, so work that failed together does
/// not retry together (and receivers recovering from an outage are not hit by every sender at
/// once).
pub fn backoff(attempt: u32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exponent).min(max);
    let half = full / 2;
    half + full.saturating_sub(half).mul_f64(rng.random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut rng = rand::rng();
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for _ in 0..100 {
            let first = backoff(1, base, max, &mut rng);
            assert!(first >= Duration::from_millis(500) && first <= base);
            let fourth = backoff(4, base, max, &mut rng);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
            let late = backoff(40, base, max, &mut rng);
            assert!(late >= Duration::from_secs(30) && late <= max);
        }
    }
}
