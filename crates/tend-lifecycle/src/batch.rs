//! Batch sizes for a purge: each batch of deletes is a transaction that holds row locks
//! until it commits, so a batch must stay inside a time budget (issue 15: 200 ms) whatever
//! the table, the indexes or the load. [`BatchSizer`] learns the rows per second from the
//! batches it has run and asks for a batch that fills a quarter of the budget; a batch that ran
//! over (a lock wait, a checkpoint, a lagging replica's pause) cuts the next one at once,
//! in proportion. Pure: the purge measures, the sizer decides.

use std::time::Duration;

/// The first batch: small enough for any table.
const FIRST: u64 = 100;
/// A batch aims at this share of the budget: the time of a delete of n rows is not steady
/// (a checkpoint, a WAL flush, autovacuum beside it), and a purge measured at half the
/// budget ran over it now and then under pgbench.
const AIM: f64 = 0.25;
/// At most this many times the previous batch: growth is by doubling, not by jumps a
/// single fast batch (a cached page, an empty range) would suggest.
const MAX_GROWTH: u64 = 2;

/// Decides how many rows the next batch deletes.
#[derive(Debug, Clone)]
pub struct BatchSizer {
    budget: Duration,
    min: u64,
    max: u64,
    size: u64,
}

impl BatchSizer {
    /// Batches of at most `max` rows, each meant to take at most `budget`.
    pub fn new(budget: Duration, max: u64) -> BatchSizer {
        let max = max.max(1);
        BatchSizer {
            budget,
            min: 1,
            max,
            size: FIRST.min(max),
        }
    }

    /// Rows to delete in the next batch.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The budget a batch is meant to stay within.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// Records that a batch deleted `rows` in `took`, and sizes the next one. A batch over
    /// budget also lowers the ceiling to half its size for good: a delete can get slower
    /// in a step past some size (the planner changing its plan), and growing back to it
    /// from the fast small batches would run over again and again.
    pub fn record(&mut self, rows: u64, took: Duration) {
        let took_s = took.as_secs_f64().max(1e-6);
        let budget_s = self.budget.as_secs_f64();
        let next = if took > self.budget {
            self.max = (self.size / 2).max(self.min);
            // Over budget: in proportion, and below what would just fit.
            let scaled = (self.size as f64) * budget_s / took_s * AIM;
            scaled as u64
        } else if rows == 0 {
            // Nothing was left to delete in that range: no rate to learn from.
            self.size
        } else {
            let rate = rows as f64 / took_s;
            let target = (rate * budget_s * AIM) as u64;
            target.min(self.size.saturating_mul(MAX_GROWTH))
        };
        self.size = next.clamp(self.min, self.max);
    }

    /// Records that a batch gave up on a lock: the next one is half as big, and the
    /// ceiling stays, since the size was not what made it slow.
    pub fn conflict(&mut self) {
        self.size = (self.size / 2).clamp(self.min, self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BUDGET: Duration = Duration::from_millis(200);

    /// A table where each row costs `per_row` and each batch `fixed`.
    fn run(
        sizer: &mut BatchSizer,
        per_row: Duration,
        fixed: Duration,
        batches: usize,
    ) -> Vec<Duration> {
        (0..batches)
            .map(|_| {
                let rows = sizer.size();
                let took = fixed + per_row * rows as u32;
                sizer.record(rows, took);
                took
            })
            .collect()
    }

    #[test]
    fn it_grows_to_fill_a_quarter_of_the_budget_and_stays_under_it() {
        let mut sizer = BatchSizer::new(BUDGET, 1_000_000);
        let times = run(
            &mut sizer,
            Duration::from_micros(20),
            Duration::from_millis(2),
            20,
        );
        assert!(times.iter().all(|t| *t <= BUDGET), "{times:?}");
        // 20 µs a row: a quarter of 200 ms is about 2,500 rows (less the fixed cost).
        let settled = sizer.size();
        assert!((2_000..=2_500).contains(&settled), "{settled}");
        // It doubled its way there rather than jumping.
        assert!(times[1] < times[2] && times[2] < times[3]);
    }

    #[test]
    fn a_slow_batch_cuts_the_next_at_once() {
        let mut sizer = BatchSizer::new(BUDGET, 1_000_000);
        run(&mut sizer, Duration::from_micros(20), Duration::ZERO, 20);
        let before = sizer.size();
        // A lock wait: 2 s for the same rows.
        sizer.record(before, Duration::from_secs(2));
        assert!(
            sizer.size() <= before / 10,
            "{} after {before}",
            sizer.size()
        );
        // The cap and the floor hold.
        let mut capped = BatchSizer::new(BUDGET, 500);
        run(&mut capped, Duration::from_nanos(10), Duration::ZERO, 20);
        assert_eq!(capped.size(), 500);
        let mut floor = BatchSizer::new(BUDGET, 1_000);
        floor.record(100, Duration::from_secs(3600));
        assert_eq!(floor.size(), 1);
        // An empty batch teaches nothing.
        let mut empty = BatchSizer::new(BUDGET, 1_000);
        empty.record(0, Duration::from_millis(1));
        assert_eq!(empty.size(), 100);
    }

    #[test]
    fn a_size_that_ran_over_is_never_reached_again() {
        let mut sizer = BatchSizer::new(BUDGET, 1_000_000);
        // 10 µs a row up to 36,000 rows, 15 times slower past it (another plan).
        let cost = |rows: u64| {
            let per_row = if rows > 36_000 { 150 } else { 10 };
            Duration::from_micros(rows * per_row)
        };
        let mut over = 0;
        for _ in 0..200 {
            let rows = sizer.size();
            let took = cost(rows);
            over += usize::from(took > BUDGET);
            sizer.record(rows, took);
        }
        assert!(over <= 1, "{over} batches over budget");
        // A lock conflict halves the next batch without lowering the ceiling.
        let before = sizer.size();
        sizer.conflict();
        assert_eq!(sizer.size(), before / 2);
    }

    proptest! {
        /// On any steady table, once it has learned (a few batches), no batch runs over
        /// the budget, and sizes stay within bounds.
        #[test]
        fn steady_tables_stay_inside_the_budget(
            per_row_ns in 100u64..5_000_000,
            fixed_us in 0u64..50_000,
            max in 1u64..2_000_000,
        ) {
            let mut sizer = BatchSizer::new(BUDGET, max);
            let per_row = Duration::from_nanos(per_row_ns);
            let fixed = Duration::from_micros(fixed_us);
            let times = run(&mut sizer, per_row, fixed, 40);
            prop_assert!(sizer.size() >= 1 && sizer.size() <= max);
            for took in &times[5..] {
                // A single row may cost more than the budget: nothing smaller exists.
                let floor = fixed + per_row;
                prop_assert!(*took <= BUDGET.max(floor), "{:?}", times);
            }
        }
    }
}
