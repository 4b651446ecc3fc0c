//! Where the time of a diff between two live databases goes, for `bench/schema.sh`: connecting
//! and introspecting each side, and diffing the two models, measured inside one process, then
//! the same with both sides introspected at once on two connections.
//!
//!     cargo run --release -p tend-schema --example diff_timing -- URL_A URL_B [ROUNDS]
//!
//! Prints one line per round and the medians, in milliseconds.

use std::time::{Duration, Instant};

use tend_pg::{ConnInfo, ConnectOptions};
use tend_schema::diff::DiffOptions;
use tend_schema::{Model, SchemaError};

async fn load(info: &ConnInfo, options: &ConnectOptions) -> Result<Model, SchemaError> {
    let session = tend_pg::connect(info, options).await?;
    tend_schema::introspect(&session.client).await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [a, b, rest @ ..] = args.as_slice() else {
        return Err("usage: diff_timing URL_A URL_B [ROUNDS]".into());
    };
    let rounds: usize = rest.first().map_or(Ok(5), |r| r.parse())?;
    let (a, b) = (ConnInfo::parse(a)?, ConnInfo::parse(b)?);
    let options = ConnectOptions::default();
    // columns: introspect A, introspect B, diff, A then B then diff, A and B at once then diff
    let mut columns: [Vec<f64>; 5] = Default::default();
    println!("round\tintrospect_a\tintrospect_b\tdiff\tsequential\tconcurrent\tobjects\tsteps");
    for round in 0..=rounds {
        let start = Instant::now();
        let before = load(&a, &options).await?;
        let loaded_a = start.elapsed();
        let after = load(&b, &options).await?;
        let loaded_b = start.elapsed();
        let plan = tend_schema::diff(&before, &after, &DiffOptions::default());
        let sequential = start.elapsed();

        let start = Instant::now();
        let (before, after) = tokio::try_join!(load(&a, &options), load(&b, &options))?;
        let plan_too = tend_schema::diff(&before, &after, &DiffOptions::default());
        let concurrent = start.elapsed();
        assert_eq!(plan.steps.len(), plan_too.steps.len());

        let row = [
            ms(loaded_a),
            ms(loaded_b - loaded_a),
            ms(sequential - loaded_b),
            ms(sequential),
            ms(concurrent),
        ];
        // Round 0 warms the server's caches and is not counted.
        let label = if round == 0 {
            "warm-up".to_string()
        } else {
            for (column, value) in columns.iter_mut().zip(row) {
                column.push(value);
            }
            round.to_string()
        };
        println!(
            "{label}\t{:.1}\t{:.1}\t{:.2}\t{:.1}\t{:.1}\t{}\t{}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            before.object_count(),
            plan.steps.len()
        );
    }
    let medians: Vec<String> = columns
        .into_iter()
        .map(|c| format!("{:.2}", median(c)))
        .collect();
    println!("median\t{}", medians.join("\t"));
    Ok(())
}
