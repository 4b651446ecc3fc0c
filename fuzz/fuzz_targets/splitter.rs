#![no_main]
//! The psql-compatible statement splitter and classifier on any text.

use libfuzzer_sys::fuzz_target;
use tend_migrate::splitter;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut last_end = 0;
    for statement in splitter::split(&text) {
        // Statements are slices of the script, in order, not overlapping.
        assert!(statement.offset >= last_end);
        assert_eq!(
            &text[statement.offset..statement.offset + statement.sql.len()],
            statement.sql
        );
        last_end = statement.offset + statement.sql.len();
        let _ = splitter::classify(statement.sql);
        let _ = statement.line_of_char_position(statement.sql.chars().count());
    }
    let _ = splitter::has_no_transaction_directive(&text);
    let _ = splitter::line_col(&text, text.len() / 2);
});
