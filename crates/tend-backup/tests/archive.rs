//! The custom-format reader against real pg_dump output: every entry and every data block
//! is found, the rows come out as COPY text, and the recorded header and TOC alone are an
//! archive pg_restore accepts.

use std::io::{BufReader, Write};
use std::process::{Command, Stdio};

use tend_backup::archive::{BLOCK_DATA, DataBlocks, Section, read_toc};
use tend_testkit::TestDb;

fn dump(db: &TestDb) -> Vec<u8> {
    let output = Command::new("pg_dump")
        .args(["--format=custom", "--compress=0"])
        .arg(db.url())
        .output()
        .expect("pg_dump runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn a_streamed_dump_reads_to_its_end_and_its_toc_alone_restores_the_schema() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE a (id int PRIMARY KEY, t text);
         INSERT INTO a SELECT g, E'x\\ty\\n' || g FROM generate_series(1, 1000) g;
         CREATE TABLE b (id serial PRIMARY KEY, a_id int REFERENCES a (id));
         INSERT INTO b (a_id) VALUES (1), (2);
         COMMENT ON TABLE a IS 'the a table';",
    );
    let bytes = dump(&db);
    let mut reader = BufReader::new(&bytes[..]);
    let toc = read_toc(&mut reader).unwrap();
    assert!(toc.readable && !toc.compressed);
    let data: Vec<_> = toc
        .entries
        .iter()
        .filter(|e| e.desc == "TABLE DATA")
        .collect();
    assert_eq!(data.len(), 2);
    assert!(
        data.iter()
            .all(|e| e.section == Section::Data && e.copy_stmt.starts_with("COPY public."))
    );
    let fk = toc
        .entries
        .iter()
        .find(|e| e.desc == "FK CONSTRAINT")
        .unwrap();
    assert_eq!(fk.section, Section::PostData);
    assert!(!fk.dependencies.is_empty());
    assert!(bytes.starts_with(&toc.prefix));

    // Every block belongs to a TABLE DATA entry, and the blocks end with the archive.
    let mut blocks = DataBlocks::new(&toc, &mut reader);
    let mut rows = Vec::new();
    while let Some((kind, id)) = blocks.next_block().unwrap() {
        assert_eq!(kind, BLOCK_DATA);
        assert!(data.iter().any(|e| e.dump_id == id));
        loop {
            let len = blocks.chunk_len().unwrap();
            if len == 0 {
                break;
            }
            blocks.read_into(len, &mut rows).unwrap();
        }
    }
    let text = String::from_utf8(rows).unwrap();
    assert!(text.contains("1\tx\\ty\\n1\n"), "{}", &text[..200]);

    // The header and TOC alone: pg_restore lists them and creates the schema from them.
    let mut child = Command::new("pg_restore")
        .args(["--section=pre-data", "--file=-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&toc.prefix).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let script = String::from_utf8_lossy(&output.stdout);
    assert!(script.contains("CREATE TABLE public.a"), "{script}");
    assert!(!script.contains("x\\ty"), "no rows in the schema");
}
