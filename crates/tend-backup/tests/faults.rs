//! What reading a backup reports, as types: damage only for bad bytes, a wrong key as a
//! wrong key, and only findings about the backup recorded against it.

use age::secrecy::SecretString;
use tend_backup::crypto::{Decryption, Encryption};
use tend_backup::fault::Damage;
use tend_backup::manifest::{DATA, VERIFICATION};
use tend_backup::ops::{BackupError, BackupOptions, backup, verify};
use tend_backup::store::{Store, StoreConfig};
use tend_pg::{ConnectOptions, PgTool, ToolSearch, VersionNeed};
use tend_testkit::TestDb;

const PASSPHRASE: &str = "faults test passphrase";

#[test]
fn a_wrong_key_is_typed_as_such_and_only_damage_is_recorded() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let source = TestDb::create();
    source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, body text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;",
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::Directory(dir.path().to_path_buf())).unwrap();
    let options = BackupOptions {
        tools: ToolSearch::default(),
        globals: false,
        encryption: Encryption::Passphrase(SecretString::from(PASSPHRASE)),
        level: 1,
        threads: 1,
        connect: ConnectOptions::default(),
        cancel: Default::default(),
    };
    let manifest = runtime
        .block_on(backup(&source.info, &store, &options, &mut |_| {}))
        .unwrap();
    let pg_restore = ToolSearch::default()
        .find(PgTool::PgRestore, VersionNeed::Any)
        .unwrap()
        .path;
    let verification = dir.path().join(&manifest.id).join(VERIFICATION);
    let check = |key: &str| {
        runtime.block_on(verify(
            &store,
            &manifest.id,
            &Decryption::Passphrase(SecretString::from(key)),
            pg_restore.clone(),
        ))
    };

    match check("not the passphrase") {
        Err(e @ BackupError::WrongKey { .. }) => assert!(!e.is_damage()),
        other => panic!("a wrong key: {other:?}"),
    }
    assert!(!verification.exists(), "a wrong key was recorded");

    let data = dir.path().join(&manifest.id).join(DATA);
    let original = std::fs::read(&data).unwrap();
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    std::fs::write(&data, &flipped).unwrap();
    // With the wrong key too: bytes that do not match the manifest are damage first.
    for key in [PASSPHRASE, "not the passphrase"] {
        match check(key) {
            Err(BackupError::Damaged {
                damage: Damage::Checksum { .. },
                ..
            }) => {}
            other => panic!("a flipped byte, key {key:?}: {other:?}"),
        }
    }
    let recorded = std::fs::read_to_string(&verification).unwrap();
    assert!(recorded.contains("\"ok\": false"), "{recorded}");

    std::fs::write(&data, &original).unwrap();
    assert!(check(PASSPHRASE).is_ok());
    let recorded = std::fs::read_to_string(&verification).unwrap();
    assert!(recorded.contains("\"ok\": true"), "{recorded}");
}
