//! Invariants shared by the connection-string targets.
#![allow(dead_code)]

use tend_pg::conninfo::{self, ConnInfo};

const SECRET_KEYS: [&str; 5] = [
    "password",
    "sslpassword",
    "oauth_client_secret",
    "scram_client_key",
    "scram_server_key",
];

/// Parses any string and checks what may be shown of it.
pub fn check_conninfo(input: &str) {
    let secrets = conninfo::secret_candidates(input);
    let _ = conninfo::scrub(input, &secrets);
    match ConnInfo::parse(input) {
        // Error types hold no text of the input (no String fields); rendering must work.
        Err(e) => {
            let _ = e.to_string();
        }
        Ok(info) => {
            let shown = info.redacted().to_string();
            // The display does not depend on the secrets' values at all.
            let mut other = info.clone();
            for key in SECRET_KEYS {
                if other.get(key).is_some() {
                    other.set(key, "x");
                }
            }
            assert_eq!(shown, other.redacted().to_string());
            assert_eq!(format!("{info:?}"), format!("{other:?}"));
            // The full string (for child programs) parses back to the same keywords and
            // values: hosts, ports, user, password, database, parameters.
            let full = info.to_secret_string();
            let back = ConnInfo::parse(&full).expect("the full string parses back");
            assert_eq!(back, info);
            assert_eq!(back.password(), info.password());
            let (child, _) = info.for_child_program();
            ConnInfo::parse(&child).expect("the child program's string parses");
            let _ = info.target();
            let _ = info.hosts();
            let _ = info.ports();
            // The output surface masks each password wherever it appears.
            // (Only a password with a letter or digit and no `*`: one with `*` can be
            // spelt by the mask and the URL around it.)
            if let Some(password) = info.password()
                && password.len() >= 3
                && password.chars().any(char::is_alphanumeric)
                && !password.contains('*')
            {
                assert!(!conninfo::scrub(&format!("{shown} {input}"), &secrets).contains(password));
            }
        }
    }
}
