//! What `catalog rebuild` needs from the catalogue beyond recording backups: a volume
//! recorded from its label as it is on tape (never as a fresh label: nothing is marked
//! overwritten), which backups the catalogue already has and where, and forgetting a
//! backup whose recording could not be completed or that a better source replaces.

use super::backups::BackupStatus;
use super::volumes::LabelRecord;
use super::{Catalog, CatalogError, Result, Volume, VolumeStatus};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// `backups.origin` of a backup recorded from an on-tape index.
pub const ORIGIN_INDEX: &str = "rebuild";
/// `backups.origin` of a backup recorded from a data tape file's tar headers alone.
pub const ORIGIN_SCAN: &str = "rebuild-scan";
/// `backups.origin` of a tape file of a tape another tool wrote, catalogued by
/// `catalog import-tape` from its tar headers.
pub const ORIGIN_IMPORT: &str = "import";

/// A tape tapedeck did not write, as `catalog import-tape` records it.
#[derive(Debug, Clone)]
pub struct ForeignVolume<'a> {
    pub label: &'a str,
    pub barcode: Option<&'a str>,
    /// Derived from the tape's first block (`first-block:<BLAKE3 hex>`).
    pub uuid: &'a str,
    pub pool: Option<&'a str>,
    pub media: Option<&'a str>,
    pub capacity: Option<i64>,
    pub block_size: i64,
    pub location: Option<&'a str>,
    /// Why it must never be written.
    pub read_only: &'a str,
}

/// A backup the catalogue already has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnownBackup {
    #[serde(skip)]
    pub id: i64,
    pub uuid: String,
    /// `tapedeck`, `pytp`, `rebuild`, `rebuild-scan`.
    pub origin: String,
    pub status: BackupStatus,
    #[serde(skip)]
    pub parent_id: Option<i64>,
}

fn known_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KnownBackup> {
    let status: String = r.get(3)?;
    Ok(KnownBackup {
        id: r.get(0)?,
        uuid: r.get(1)?,
        origin: r.get(2)?,
        status: BackupStatus::parse(&status),
        parent_id: r.get(4)?,
    })
}

impl Catalog {
    /// The volume a label read from tape describes. A volume the catalogue knows keeps
    /// its history and status; what it does not know yet (uuid, barcode, media, block
    /// size, capacity) is filled in from the label. A volume whose catalogue uuid differs
    /// from the label's is a different tape with the same name: refused. A new volume is
    /// recorded as labelled at `labelled_at`, empty until backups are recorded on it.
    /// Returns the volume and whether the catalogue knew it.
    pub fn volume_from_label(
        &mut self,
        rec: &LabelRecord<'_>,
        labelled_at: Option<i64>,
    ) -> Result<(Volume, bool)> {
        if let Some(v) = self.find_volume(rec.label)? {
            if v.uuid.as_deref().is_some_and(|u| u != rec.uuid) {
                return Err(CatalogError::Invalid(format!(
                    "the tape is labelled {} (uuid {}) but the catalogue's volume {} has uuid {}: \
                     it was relabelled elsewhere, or is another tape with the same name",
                    rec.label,
                    rec.uuid,
                    v.label,
                    v.uuid.as_deref().unwrap_or("?")
                )));
            }
            self.check_uuid_free(rec.uuid, v.id)?;
            self.write(|tx| {
                tx.execute(
                    "UPDATE volumes SET uuid = ?2, barcode = COALESCE(barcode, ?3),
                        media = COALESCE(media, ?4), block_size = COALESCE(block_size, ?5),
                        capacity = COALESCE(capacity, ?6), location = COALESCE(?7, location),
                        tape_files = MAX(tape_files, 1), passes = MAX(passes, 1),
                        labelled_at = COALESCE(labelled_at, ?8)
                     WHERE id = ?1",
                    params![
                        v.id,
                        rec.uuid,
                        rec.barcode,
                        rec.media,
                        rec.block_size,
                        rec.capacity,
                        rec.location,
                        labelled_at
                    ],
                )?;
                Ok(())
            })?;
            return Ok((self.volume(rec.label)?, true));
        }
        self.check_uuid_free(rec.uuid, -1)?;
        let v = self.register_volume(rec.label, rec.barcode, rec.pool)?;
        self.write(|tx| {
            tx.execute(
                "UPDATE volumes SET uuid = ?2, media = ?3, capacity = ?4, used = ?5,
                    location = ?6, block_size = ?7, tape_files = 1, passes = 1,
                    labelled_at = ?8
                 WHERE id = ?1",
                params![
                    v.id,
                    rec.uuid,
                    rec.media,
                    rec.capacity,
                    rec.used,
                    rec.location,
                    rec.block_size,
                    labelled_at
                ],
            )?;
            Ok(())
        })?;
        Ok((self.volume(rec.label)?, false))
    }

    fn check_uuid_free(&self, uuid: &str, volume_id: i64) -> Result<()> {
        let other: Option<String> = self
            .conn()
            .query_row(
                "SELECT label FROM volumes WHERE uuid = ?1 AND id != ?2",
                params![uuid, volume_id],
                |r| r.get(0),
            )
            .optional()?;
        match other {
            Some(label) => Err(CatalogError::Invalid(format!(
                "the catalogue has this tape (uuid {uuid}) as volume {label}: the label was \
                 rewritten with another name elsewhere"
            ))),
            None => Ok(()),
        }
    }

    /// Records a tape another tool wrote: a new volume, or the catalogue's volume of this
    /// label (registered by hand or by `migrate-pytp`, or imported before) taken over. It
    /// is read-only with the reason given, and full. A volume with another uuid is
    /// another tape: refused, as is a uuid another volume has. Returns the volume and
    /// whether the catalogue knew it.
    pub fn record_foreign_volume(&mut self, rec: &ForeignVolume<'_>) -> Result<(Volume, bool)> {
        let existing = self.find_volume(rec.label)?;
        if let Some(v) = &existing {
            if v.uuid.as_deref().is_some_and(|u| u != rec.uuid) {
                return Err(CatalogError::Invalid(format!(
                    "the catalogue's volume {} is another tape (uuid {}), not this one ({})",
                    v.label,
                    v.uuid.as_deref().unwrap_or("?"),
                    rec.uuid
                )));
            }
        }
        let id = existing.as_ref().map_or(-1, |v| v.id);
        self.check_uuid_free(rec.uuid, id)?;
        let v = match existing {
            Some(v) => v,
            None => self.register_volume(rec.label, rec.barcode, rec.pool)?,
        };
        if let Some(pool) = rec.pool {
            self.assign_pool(&v.label, pool, false)?;
        }
        self.write(|tx| {
            tx.execute(
                "UPDATE volumes SET uuid = ?2, barcode = COALESCE(barcode, ?3),
                    media = COALESCE(media, ?4), capacity = COALESCE(capacity, ?5),
                    block_size = ?6, location = COALESCE(?7, location), read_only = ?8
                 WHERE id = ?1",
                params![
                    v.id,
                    rec.uuid,
                    rec.barcode,
                    rec.media,
                    rec.capacity,
                    rec.block_size,
                    rec.location,
                    rec.read_only
                ],
            )?;
            Ok(())
        })?;
        if v.status != VolumeStatus::Full && v.status.can_become(VolumeStatus::Full) {
            self.set_volume_status(&v.label, VolumeStatus::Full, None)?;
        }
        Ok((self.volume(rec.label)?, id != -1))
    }

    /// The volume with this uuid, if the catalogue has it.
    pub fn volume_with_uuid(&self, uuid: &str) -> Result<Option<Volume>> {
        let label: Option<String> = self
            .conn()
            .query_row("SELECT label FROM volumes WHERE uuid = ?1", [uuid], |r| {
                r.get(0)
            })
            .optional()?;
        label.map(|l| self.volume(&l)).transpose()
    }

    /// Makes two records of one backup one: backup `keep` (whose members are the ones
    /// to keep, read from tape) takes the identity of backup `identity` (its uuid, job,
    /// label, kind, parent, start time and strategy, as an earlier history import
    /// recorded them), whose own members and row are removed; its children become
    /// `keep`'s. One transaction: either both are as they were or they are one. A backup
    /// of a job already (one that took an identity before) keeps it: false.
    pub fn merge_backup_identity(&mut self, keep: i64, identity: i64) -> Result<bool> {
        self.write(|tx| {
            let job: Option<i64> =
                tx.query_row("SELECT job_id FROM backups WHERE id = ?1", [keep], |r| {
                    r.get(0)
                })?;
            if job.is_some() || keep == identity {
                return Ok(false);
            }
            type Identity = (
                String,
                Option<i64>,
                Option<String>,
                String,
                Option<i64>,
                i64,
                Option<String>,
            );
            let who: Identity = tx.query_row(
                "SELECT uuid, job_id, label, kind, parent_id, started_at, strategy
                 FROM backups WHERE id = ?1",
                [identity],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )?;
            tx.execute(
                "UPDATE backups SET parent_id = ?1 WHERE parent_id = ?2",
                [keep, identity],
            )?;
            for sql in [
                "UPDATE tape_errors SET backup_id = ?1 WHERE backup_id = ?2",
                "UPDATE drive_stats SET backup_id = ?1 WHERE backup_id = ?2",
            ] {
                tx.execute(sql, [keep, identity])?;
            }
            delete_backup_rows(tx, identity)?;
            let (uuid, job_id, label, kind, parent_id, started_at, strategy) = who;
            tx.execute(
                "UPDATE backups SET uuid = ?2, job_id = ?3, label = ?4, kind = ?5,
                    parent_id = CASE WHEN ?6 = id THEN NULL ELSE ?6 END, started_at = ?7,
                    strategy = COALESCE(?8, strategy)
                 WHERE id = ?1",
                params![keep, uuid, job_id, label, kind, parent_id, started_at, strategy],
            )?;
            Ok(true)
        })
    }

    /// A volume a backup's index names (another volume of a spanned backup): registered
    /// by label until its own rebuild reads its label, with the backup's block size.
    pub fn volume_of_backup(
        &mut self,
        label: &str,
        pool: Option<&str>,
        block_size: i64,
    ) -> Result<Volume> {
        let v = self.register_volume(label, None, pool)?;
        self.write(|tx| {
            tx.execute(
                "UPDATE volumes SET block_size = COALESCE(block_size, ?2) WHERE id = ?1",
                params![v.id, block_size],
            )?;
            Ok(())
        })?;
        self.volume(label)
    }

    /// The backup with this uuid, if the catalogue has it.
    pub fn known_backup(&self, uuid: &str) -> Result<Option<KnownBackup>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, uuid, origin, status, parent_id FROM backups WHERE uuid = ?1",
                [uuid],
                known_from_row,
            )
            .optional()?)
    }

    /// Backups that wrote tape file `tape_file` of the volume (copies not overwritten).
    pub fn backups_in_tape_file(&self, volume_id: i64, tape_file: i64) -> Result<Vec<KnownBackup>> {
        let mut stmt = self.conn().prepare(
            "SELECT b.id, b.uuid, b.origin, b.status, b.parent_id FROM backups b
             JOIN backup_volumes bv ON bv.backup_id = b.id
             WHERE bv.volume_id = ?1 AND bv.tape_file = ?2 AND bv.overwritten = 0
             ORDER BY b.id",
        )?;
        let rows = stmt
            .query_map([volume_id, tape_file], known_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The places (volume label, tape file) a backup wrote, in order.
    pub fn backup_parts(&self, backup_id: i64) -> Result<Vec<(i64, String, Option<i64>)>> {
        let mut stmt = self.conn().prepare(
            "SELECT v.id, v.label, bv.tape_file FROM backup_volumes bv
             JOIN volumes v ON v.id = bv.volume_id WHERE bv.backup_id = ?1 ORDER BY bv.seq",
        )?;
        let rows = stmt
            .query_map([backup_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Records where the backup's part on `volume_id`/`tape_file` starts, adding the part
    /// (after the others) if no member named it.
    pub fn set_part_start(
        &mut self,
        backup_id: i64,
        volume_id: i64,
        tape_file: i64,
        first_block: i64,
    ) -> Result<()> {
        self.write(|tx| {
            let updated = tx.execute(
                "UPDATE backup_volumes SET first_block = ?4
                 WHERE backup_id = ?1 AND volume_id = ?2 AND tape_file = ?3",
                params![backup_id, volume_id, tape_file, first_block],
            )?;
            if updated == 0 {
                tx.execute(
                    "INSERT INTO backup_volumes (backup_id, seq, volume_id, tape_file, first_block)
                     VALUES (?1, (SELECT COALESCE(MAX(seq) + 1, 0) FROM backup_volumes
                                  WHERE backup_id = ?1), ?2, ?3, ?4)",
                    params![backup_id, volume_id, tape_file, first_block],
                )?;
            }
            Ok(())
        })
    }

    /// Links a backup recorded without its parent (the parent was not in the catalogue
    /// then) to it; false when the parent is still unknown or a parent is already set.
    pub fn link_parent(&mut self, backup_id: i64, parent_uuid: &str) -> Result<bool> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE backups SET parent_id = (SELECT id FROM backups WHERE uuid = ?2)
                 WHERE id = ?1 AND parent_id IS NULL
                   AND EXISTS (SELECT 1 FROM backups WHERE uuid = ?2 AND id != ?1)",
                params![backup_id, parent_uuid],
            )?;
            Ok(n == 1)
        })
    }

    /// Sets when a recorded backup started (known only once its members are read).
    pub fn set_backup_started(&mut self, backup_id: i64, started_at: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE backups SET started_at = ?2 WHERE id = ?1",
                params![backup_id, started_at],
            )?;
            Ok(())
        })
    }

    /// The damage readers would find in the member records of a backup, if any.
    pub fn records_damage(&self, backup_id: i64) -> Result<Option<CatalogError>> {
        match self.member_records(backup_id, |_, _, _| Ok(())) {
            Ok(()) => Ok(None),
            Err(e @ CatalogError::Damaged { .. }) => Ok(Some(e)),
            Err(e) => Err(e),
        }
    }

    /// Removes a backup's member records and split segments (its row, parts and chain
    /// links stay), so that they are recorded again, as when they were found damaged.
    pub fn clear_records(&mut self, backup_id: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM segments WHERE backup_id = ?1", [backup_id])?;
            tx.execute("DELETE FROM members WHERE backup_id = ?1", [backup_id])?;
            tx.execute(
                "UPDATE backups SET files = 0, bytes = 0 WHERE id = ?1",
                [backup_id],
            )?;
            Ok(())
        })
    }

    /// Removes what is recorded under a backup id that has no row in the backups table
    /// (the row was lost, or its id damaged) once every tape file it names is recorded
    /// again under a backup that has one: then nothing of it is needed. Records that name
    /// a tape file no backup row covers stay, for `catalog check` to report with the
    /// volumes to rebuild. Returns the ids removed.
    pub fn forget_superseded_orphans(&mut self) -> Result<Vec<i64>> {
        let orphans: Vec<i64> = self
            .conn()
            .prepare(
                "SELECT DISTINCT o.backup_id FROM (
                     SELECT backup_id FROM members
                     UNION SELECT backup_id FROM backup_volumes
                     UNION SELECT backup_id FROM segments
                     UNION SELECT backup_id FROM drive_stats WHERE backup_id IS NOT NULL
                     UNION SELECT backup_id FROM tape_errors WHERE backup_id IS NOT NULL
                 ) o
                 WHERE NOT EXISTS (SELECT 1 FROM backups b WHERE b.id = o.backup_id)
                   AND NOT EXISTS (
                     SELECT 1 FROM backup_volumes part
                     WHERE part.backup_id = o.backup_id AND part.overwritten = 0
                       AND NOT EXISTS (
                         SELECT 1 FROM backup_volumes now JOIN backups b ON b.id = now.backup_id
                         WHERE now.volume_id = part.volume_id AND now.tape_file = part.tape_file
                           AND now.overwritten = 0))
                 ORDER BY 1",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for &id in &orphans {
            self.forget_backup(id)?;
        }
        Ok(orphans)
    }

    /// Removes a backup and everything recorded of it (members, parts, split segments).
    /// Names and directories stay: other backups may share them, and unused ones cost
    /// nothing but a row.
    pub fn forget_backup(&mut self, backup_id: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE backups SET parent_id = NULL WHERE parent_id = ?1",
                [backup_id],
            )?;
            tx.execute(
                "UPDATE tape_errors SET backup_id = NULL WHERE backup_id = ?1",
                [backup_id],
            )?;
            tx.execute(
                "UPDATE drive_stats SET backup_id = NULL WHERE backup_id = ?1",
                [backup_id],
            )?;
            Ok(delete_backup_rows(tx, backup_id)?)
        })
    }

    /// What reading the whole volume showed: `used` bytes and `tape_files` tape files (the
    /// label included). Neither ever goes down.
    pub fn record_volume_read(&mut self, volume_id: i64, used: i64, tape_files: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE volumes SET used = MAX(used, ?2), tape_files = MAX(tape_files, ?3)
                 WHERE id = ?1",
                params![volume_id, used, tape_files],
            )?;
            Ok(())
        })
    }
}

/// Deletes a backup's row and what hangs on it: split segments, member records, parts.
/// Rows that point at it from elsewhere must be settled first.
fn delete_backup_rows(tx: &rusqlite::Transaction<'_>, backup_id: i64) -> rusqlite::Result<()> {
    for sql in [
        "DELETE FROM segments WHERE backup_id = ?1",
        "DELETE FROM members WHERE backup_id = ?1",
        "DELETE FROM backup_volumes WHERE backup_id = ?1",
        "DELETE FROM backups WHERE id = ?1",
    ] {
        tx.execute(sql, [backup_id])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{FileKind, FileRecord, NewBackup, PoolKind, SegmentRecord, VolumeStatus};

    fn record<'a>(label: &'a str, uuid: &'a str, pool: Option<&'a str>) -> LabelRecord<'a> {
        LabelRecord {
            label,
            barcode: Some(label),
            uuid,
            pool,
            media: Some("LTO-9"),
            capacity: Some(1 << 30),
            block_size: 524_288,
            used: 524_288,
            location: Some("drive lto9"),
        }
    }

    #[test]
    fn a_label_makes_a_new_volume_or_fills_in_a_known_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        cat.create_pool("daily", PoolKind::Daily, 30).unwrap();
        let (v, known) = cat
            .volume_from_label(&record("T1", "u-1", Some("daily")), Some(1000))
            .unwrap();
        assert!(!known);
        assert_eq!(v.uuid.as_deref(), Some("u-1"));
        assert_eq!(v.pool.as_deref(), Some("daily"));
        assert_eq!(
            (v.status, v.passes, v.labelled_at),
            (VolumeStatus::Empty, 1, Some(1000))
        );
        // Known by label only (a spanned backup's other volume): filled in, status kept.
        cat.register_volume("T2", None, None).unwrap();
        cat.set_volume_status("T2", VolumeStatus::Full, None)
            .unwrap();
        let (v, known) = cat
            .volume_from_label(&record("T2", "u-2", None), None)
            .unwrap();
        assert!(known);
        assert_eq!(v.uuid.as_deref(), Some("u-2"));
        assert_eq!(v.status, VolumeStatus::Full);
        assert_eq!(v.block_size, Some(524_288));
        // Another tape under a known name, or a known tape under another name: refused.
        let err = cat
            .volume_from_label(&record("T1", "u-other", None), None)
            .unwrap_err();
        assert!(
            err.is_bad_input() && err.to_string().contains("relabelled"),
            "{err}"
        );
        let err = cat
            .volume_from_label(&record("T3", "u-1", None), None)
            .unwrap_err();
        assert!(err.to_string().contains("as volume T1"), "{err}");
    }

    #[test]
    fn a_forgotten_backup_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        let (v, _) = cat
            .volume_from_label(&record("T1", "u-1", None), None)
            .unwrap();
        let w = cat.register_volume("T2", None, None).unwrap();
        let id = cat
            .begin_backup(&NewBackup {
                uuid: "b-1",
                kind: "full",
                started_at: 5,
                origin: ORIGIN_SCAN,
                ..Default::default()
            })
            .unwrap();
        let seg = |volume_id, file_offset, length| SegmentRecord {
            volume_id,
            tape_file: Some(1),
            block: Some(2),
            offset: Some(0),
            file_offset,
            length,
        };
        let mut batch = cat.file_batch(id);
        batch
            .push(FileRecord {
                path: "/a/split".into(),
                kind: FileKind::File,
                size: 10,
                mtime_ns: None,
                mode: None,
                uid: None,
                gid: None,
                link: None,
                blake3: None,
                segments: vec![seg(v.id, 0, 4), seg(w.id, 4, 6)],
            })
            .unwrap();
        batch.finish().unwrap();
        cat.set_part_start(id, v.id, 1, 2).unwrap();
        cat.set_part_start(id, v.id, 3, 9).unwrap();
        let parts = cat.backup_parts(id).unwrap();
        assert_eq!(
            parts
                .iter()
                .map(|p| (p.1.as_str(), p.2))
                .collect::<Vec<_>>(),
            vec![("T1", Some(1)), ("T2", Some(1)), ("T1", Some(3))]
        );
        assert_eq!(cat.backups_in_tape_file(v.id, 1).unwrap()[0].uuid, "b-1");
        assert_eq!(
            cat.known_backup("b-1").unwrap().unwrap().origin,
            ORIGIN_SCAN
        );
        cat.forget_backup(id).unwrap();
        assert!(cat.known_backup("b-1").unwrap().is_none());
        assert!(cat.backups_in_tape_file(v.id, 1).unwrap().is_empty());
        assert!(cat.find_path("/a/split").unwrap().is_empty());
        assert!(cat.check().unwrap().is_ok(), "{:?}", cat.check().unwrap());
    }

    #[test]
    fn records_left_under_a_lost_row_go_once_their_tape_files_are_recorded_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        let (v, _) = cat
            .volume_from_label(&record("T1", "u-1", None), None)
            .unwrap();
        let backup = |cat: &mut Catalog, uuid: &str, tape_file: i64| {
            let id = cat
                .begin_backup(&NewBackup {
                    uuid,
                    kind: "full",
                    started_at: 5,
                    origin: ORIGIN_INDEX,
                    ..Default::default()
                })
                .unwrap();
            cat.add_backup_volume(id, 0, v.id, Some(tape_file), Some(2))
                .unwrap();
            id
        };
        let first = backup(&mut cat, "b-1", 1);
        let second = backup(&mut cat, "b-2", 3);
        // Both rows' ids damaged: their parts stay under ids no row has.
        cat.conn()
            .execute_batch("PRAGMA foreign_keys = OFF; UPDATE backups SET id = id + 64;")
            .unwrap();
        assert!(cat.forget_superseded_orphans().unwrap().is_empty());
        // Tape file 1 is recorded again: only what was left of it goes.
        backup(&mut cat, "b-1 again", 1);
        assert_eq!(cat.forget_superseded_orphans().unwrap(), [first]);
        let left: Vec<i64> = cat
            .conn()
            .prepare("SELECT DISTINCT backup_id FROM backup_volumes ORDER BY 1")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(left.len(), 2);
        assert_eq!(left[0], second);
    }
}
