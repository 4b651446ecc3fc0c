#![no_main]
//! The environment layer of Settings::resolve: any values for any of tend's variables,
//! validated (URLs, integers, durations, thresholds) with nothing panicking, and no URL
//! password in what `config show` displays.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use tend_core::settings;

fn empty_dir() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tend-fuzz-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Each line `N=value` sets the N-th variable tend reads.
    let names: Vec<&str> = settings::KEYS
        .iter()
        .flat_map(|k| k.env.iter().copied())
        .chain(["DB_QUERY_TIME_THRESHOLD", "DB_CONNECTION_COUNT_THRESHOLD"])
        .collect();
    let mut env = BTreeMap::new();
    for line in text.lines() {
        if let Some((n, value)) = line.split_once('=') {
            let index = n.bytes().fold(0usize, |a, b| a.wrapping_add(b as usize));
            env.insert(names[index % names.len()].to_string(), value.to_string());
        }
    }
    let get = |name: &str| env.get(name).cloned();
    match settings::Settings::resolve(empty_dir(), &get, &settings::FlagOverrides::default()) {
        Err(e) => {
            let _ = e.to_string();
        }
        Ok(s) => {
            let _ = s.connect_options();
            let secrets = s.secrets();
            for entry in s.entries() {
                if let Some(value) = entry.value {
                    let _ = tend_pg::conninfo::scrub(&value, &secrets);
                }
            }
        }
    }
});
