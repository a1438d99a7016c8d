//! Latency percentiles and status counts for one load run.

use std::collections::BTreeMap;

/// Responses counted by HTTP status code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts(BTreeMap<u16, u64>);

impl StatusCounts {
    /// Counts one response with `status`.
    pub fn add(&mut self, status: u16) {
        *self.0.entry(status).or_default() += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (status, n) in &other.0 {
            *self.0.entry(*status).or_default() += n;
        }
    }

    /// Responses whose status is not 2xx.
    pub fn non_2xx(&self) -> u64 {
        self.0
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }

    /// The counts of non-2xx statuses not in `allowed`.
    pub fn outside(&self, allowed: &[u16]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(s, _)| !(200..300).contains(*s) && !allowed.contains(s))
                .map(|(s, n)| (*s, *n))
                .collect(),
        )
    }

    /// Whether no response is counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// All responses.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The counts as a JSON object keyed by status.
    pub fn to_json(&self) -> serde_json::Value {
        self.0
            .iter()
            .map(|(s, n)| (s.to_string(), serde_json::Value::from(*n)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// `200×1234 401×5`, for the human line.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(s, n)| format!("{s}x{n}")).collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

/// Latencies of one run, sorted, with the time they were measured over.
#[derive(Debug, Clone)]
pub struct Summary {
    sorted_ns: Vec<u64>,
    seconds: f64,
}

impl Summary {
    /// Sorts `latencies_ns` (one per request measured over `seconds`).
    pub fn new(mut latencies_ns: Vec<u64>, seconds: f64) -> Self {
        latencies_ns.sort_unstable();
        Self {
            sorted_ns: latencies_ns,
            seconds,
        }
    }

    /// Requests measured.
    pub fn count(&self) -> usize {
        self.sorted_ns.len()
    }

    /// The time the requests were measured over, in seconds.
    pub fn seconds(&self) -> f64 {
        self.seconds
    }

    /// Requests per second over the measured time.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.sorted_ns.len() as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The latency below which a fraction `q` (0..=1) of requests fall
    /// (nearest rank); 0 when nothing was measured.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        let n = self.sorted_ns.len();
        if n == 0 {
            return 0;
        }
        let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
        self.sorted_ns[rank.clamp(1, n) - 1]
    }

    /// Median latency.
    pub fn p50_ns(&self) -> u64 {
        self.quantile_ns(0.50)
    }

    /// 99th percentile latency.
    pub fn p99_ns(&self) -> u64 {
        self.quantile_ns(0.99)
    }

    /// Largest latency.
    pub fn max_ns(&self) -> u64 {
        self.sorted_ns.last().copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let s = Summary::new((1..=100).rev().collect(), 2.0);
        assert_eq!(s.p50_ns(), 50);
        assert_eq!(s.p99_ns(), 99);
        assert_eq!(s.max_ns(), 100);
        assert_eq!(s.quantile_ns(0.0), 1);
        assert!((s.rate() - 50.0).abs() < 1e-9);
        let empty = Summary::new(Vec::new(), 0.0);
        assert_eq!((empty.p99_ns(), empty.max_ns(), empty.rate()), (0, 0, 0.0));
    }

    #[test]
    fn statuses() {
        let mut a = StatusCounts::default();
        a.add(200);
        a.add(200);
        let mut b = StatusCounts::default();
        b.add(401);
        a.merge(&b);
        assert_eq!((a.total(), a.non_2xx()), (3, 1));
        assert_eq!(a.describe(), "200x2 401x1");
        assert_eq!(a.to_json(), serde_json::json!({"200": 2, "401": 1}));
    }
}
