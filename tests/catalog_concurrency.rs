//! Two writers at once (two drives backing up), a writer locked out, a read-only file.

use std::time::Duration;
use tapedeck::catalog::{
    BackupStatus, Catalog, CatalogError, FileKind, FileRecord, NewBackup, PoolKind, SegmentRecord,
};

fn file(path: String, volume_id: i64, i: i64) -> FileRecord {
    FileRecord {
        path,
        kind: FileKind::File,
        size: 100,
        mtime_ns: Some(i),
        mode: Some(0o644),
        uid: Some(0),
        gid: Some(0),
        link: None,
        blake3: Some([1; 32]),
        segments: vec![SegmentRecord {
            volume_id,
            tape_file: Some(1),
            block: Some(2 + i / 100),
            offset: Some((i % 100) * 1024),
            file_offset: 0,
            length: 100,
        }],
    }
}

#[test]
fn two_writers_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    {
        let mut cat = Catalog::open(&path).unwrap();
        cat.create_pool("daily", PoolKind::Daily, 30).unwrap();
        cat.register_volume("A", None, Some("daily")).unwrap();
        cat.register_volume("B", None, Some("daily")).unwrap();
    }
    const FILES: i64 = 120_000;
    let writers: Vec<_> = ["A", "B"]
        .into_iter()
        .map(|vol| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut cat = Catalog::open(&path).unwrap();
                let v = cat.volume(vol).unwrap();
                let id = cat
                    .begin_backup(&NewBackup {
                        uuid: vol,
                        job: Some(vol),
                        kind: "full",
                        pool: Some("daily"),
                        started_at: 1,
                        drive: Some(vol),
                        origin: "tapedeck",
                        ..Default::default()
                    })
                    .unwrap();
                cat.add_backup_volume(id, 0, v.id, Some(1), Some(2))
                    .unwrap();
                let mut batch = cat.file_batch(id);
                for i in 0..FILES {
                    // Both writers share directory and file names, so interning races.
                    batch
                        .push(file(
                            format!("/data/d{}/f{}-{vol}", i % 50, i % 1000),
                            v.id,
                            i,
                        ))
                        .unwrap();
                }
                assert_eq!(batch.finish().unwrap(), FILES as u64);
                cat.finish_backup(id, BackupStatus::Complete, 2, None)
                    .unwrap();
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer succeeded");
    }
    let cat = Catalog::open(&path).unwrap();
    let backups = cat.backups(None, 10).unwrap();
    assert_eq!(backups.len(), 2);
    assert!(backups
        .iter()
        .all(|b| b.files == FILES && b.status == BackupStatus::Complete));
    assert!(cat.check().unwrap().is_ok(), "{:?}", cat.check().unwrap());
    // i = 7 (mod 1000) lands in d7 as f7-A: once per thousand files.
    assert_eq!(
        cat.find_path("/data/d7/f7-A").unwrap().len(),
        FILES as usize / 1000
    );
    let (hits, _) = cat.find_pattern("f999-", 10_000).unwrap();
    assert_eq!(hits.len(), 2 * (FILES as usize / 1000));
}

#[test]
fn a_writer_that_cannot_get_the_lock_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let mut holder = Catalog::open(&path).unwrap();
    holder.create_pool("daily", PoolKind::Daily, 30).unwrap();
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    holder.set_busy_timeout(Duration::from_millis(200)).unwrap();
    let err = holder
        .create_pool("weekly", PoolKind::Weekly, 60)
        .unwrap_err();
    assert!(matches!(err, CatalogError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains("locked by another process"),
        "{err}"
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    holder.create_pool("weekly", PoolKind::Weekly, 60).unwrap();
}

#[test]
fn a_read_only_catalogue_answers_but_refuses_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    Catalog::open(&path)
        .unwrap()
        .create_pool("daily", PoolKind::Daily, 30)
        .unwrap();
    let mut ro = Catalog::open_read_only(&path).unwrap();
    assert_eq!(ro.pool("daily").unwrap().retention_days, 30);
    let err = ro.create_pool("weekly", PoolKind::Weekly, 7).unwrap_err();
    assert!(matches!(err, CatalogError::ReadOnly { .. }), "{err:?}");
    assert!(err.to_string().contains("read-only"), "{err}");
}
