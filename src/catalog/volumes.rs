//! Volumes (tape cartridges) and their life cycle. Status changes go through
//! [`VolumeStatus::can_become`], the one place the allowed transitions are written down.

use super::{closest, format_time, now, Catalog, CatalogError, Result};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeStatus {
    /// Labelled (or registered), no backup data on it.
    Empty,
    /// Holds backups and has room for more.
    Appendable,
    /// Reached early warning; read only until recycled.
    Full,
    /// A write or read error: pull it and check it.
    Error,
    /// Out of service for good.
    Retired,
}

impl VolumeStatus {
    pub const ALL: [VolumeStatus; 5] = [
        VolumeStatus::Empty,
        VolumeStatus::Appendable,
        VolumeStatus::Full,
        VolumeStatus::Error,
        VolumeStatus::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VolumeStatus::Empty => "empty",
            VolumeStatus::Appendable => "appendable",
            VolumeStatus::Full => "full",
            VolumeStatus::Error => "error",
            VolumeStatus::Retired => "retired",
        }
    }

    /// The allowed transitions. Going back to `Empty` is recycling (relabelling), which
    /// the callers only do once the data has expired or the operator forces it.
    pub fn can_become(self, next: VolumeStatus) -> bool {
        use VolumeStatus::*;
        self == next
            || matches!(
                (self, next),
                (Empty, Appendable | Full | Error | Retired)
                    | (Appendable, Full | Error | Retired | Empty)
                    | (Full, Empty | Error | Retired)
                    | (Error, Empty | Retired)
            )
    }
}

impl fmt::Display for VolumeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VolumeStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        VolumeStatus::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a volume status"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub id: i64,
    pub label: String,
    pub barcode: Option<String>,
    pub uuid: Option<String>,
    /// None: a scratch volume any pool may take.
    pub pool: Option<String>,
    pub media: Option<String>,
    pub capacity: Option<i64>,
    pub used: i64,
    pub status: VolumeStatus,
    pub location: Option<String>,
    pub block_size: Option<i64>,
    /// Tape files on the volume (the label is tape file 0).
    pub tape_files: i64,
    /// The data on it is protected until then (Unix seconds).
    pub expires_at: Option<i64>,
    /// Times the volume was labelled (written from BOT).
    pub passes: i64,
    pub labelled_at: Option<i64>,
    pub written_at: Option<i64>,
    pub error: Option<String>,
    /// Why the volume must never be written (a tape another tool wrote), if so.
    pub read_only: Option<String>,
}

impl Volume {
    /// When the volume's data stops being protected, if it is now.
    pub fn protected_until(&self, at: i64) -> Option<i64> {
        self.expires_at.filter(|&e| e > at)
    }
}

const VOLUME_COLUMNS: &str = "v.id, v.label, v.barcode, v.uuid, p.name, v.media, v.capacity, \
    v.used, v.status, v.location, v.block_size, v.tape_files, v.expires_at, v.passes, \
    v.labelled_at, v.written_at, v.error, v.read_only";

fn volume_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Volume> {
    let status: String = r.get(8)?;
    Ok(Volume {
        id: r.get(0)?,
        label: r.get(1)?,
        barcode: r.get(2)?,
        uuid: r.get(3)?,
        pool: r.get(4)?,
        media: r.get(5)?,
        capacity: r.get(6)?,
        used: r.get(7)?,
        status: status.parse().unwrap_or(VolumeStatus::Error),
        location: r.get(9)?,
        block_size: r.get(10)?,
        tape_files: r.get(11)?,
        expires_at: r.get(12)?,
        passes: r.get(13)?,
        labelled_at: r.get(14)?,
        written_at: r.get(15)?,
        error: r.get(16)?,
        read_only: r.get(17)?,
    })
}

/// What a freshly written label says, to record it.
#[derive(Debug, Clone)]
pub struct LabelRecord<'a> {
    pub label: &'a str,
    pub barcode: Option<&'a str>,
    pub uuid: &'a str,
    pub pool: Option<&'a str>,
    pub media: Option<&'a str>,
    pub capacity: Option<i64>,
    pub block_size: i64,
    /// Bytes the label tape file takes.
    pub used: i64,
    pub location: Option<&'a str>,
}

/// A drive or medium error to log.
#[derive(Debug, Clone)]
pub struct TapeErrorRecord<'a> {
    pub volume_id: Option<i64>,
    pub backup_id: Option<i64>,
    pub drive: &'a str,
    /// `write`, `read`, `filemark`, ...
    pub kind: &'a str,
    pub position: Option<i64>,
    pub detail: &'a str,
}

impl Catalog {
    /// The volume with this label (or barcode); an unknown one suggests the closest label.
    pub fn volume(&self, label: &str) -> Result<Volume> {
        if let Some(v) = self.find_volume(label)? {
            return Ok(v);
        }
        let known = self.volume_labels()?;
        Err(CatalogError::UnknownVolume {
            label: label.to_string(),
            suggestion: closest(label, known.iter().map(String::as_str)),
            known,
        })
    }

    /// The volume with this label or barcode, if the catalogue has it.
    pub fn find_volume(&self, label: &str) -> Result<Option<Volume>> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT {VOLUME_COLUMNS} FROM volumes v LEFT JOIN pools p ON p.id = v.pool_id
                     WHERE v.label = ?1 OR v.barcode = ?1 ORDER BY v.label = ?1 DESC LIMIT 1"
                ),
                [label],
                volume_from_row,
            )
            .optional()
            .map_err(|e| self.map_err(e))
    }

    fn volume_labels(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT label FROM volumes ORDER BY label")?;
        let labels = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(labels)
    }

    /// Volumes, all or of one pool (`Some("")` for the scratch set), by label.
    pub fn volumes(&self, pool: Option<&str>) -> Result<Vec<Volume>> {
        let pool_id = match pool {
            Some("") => Some(None),
            Some(name) => Some(Some(self.pool(name)?.id)),
            None => None,
        };
        let sql = format!(
            "SELECT {VOLUME_COLUMNS} FROM volumes v LEFT JOIN pools p ON p.id = v.pool_id
             WHERE ?1 = 0 OR v.pool_id IS ?2 ORDER BY v.label"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt
            .query_map(
                params![i64::from(pool_id.is_some()), pool_id.flatten()],
                volume_from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Registers a volume by label (status empty, not yet labelled on tape) in `pool`, or
    /// in the scratch set. An existing volume is returned unchanged.
    pub fn register_volume(
        &mut self,
        label: &str,
        barcode: Option<&str>,
        pool: Option<&str>,
    ) -> Result<Volume> {
        if let Some(v) = self.find_volume(label)? {
            return Ok(v);
        }
        valid_label(label)?;
        let pool_id = pool.map(|p| self.pool(p)).transpose()?.map(|p| p.id);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO volumes (label, barcode, pool_id, status) VALUES (?1, ?2, ?3, 'empty')",
                params![label, barcode, pool_id],
            )?;
            Ok(())
        })?;
        self.volume(label)
    }

    /// Puts a volume into a pool. A volume holding unexpired data of another pool stays
    /// where it is unless forced.
    pub fn assign_pool(&mut self, label: &str, pool: &str, force: bool) -> Result<Volume> {
        let v = self.volume(label)?;
        let p = self.pool(pool)?;
        if v.pool.as_deref() == Some(pool) {
            return Ok(v);
        }
        if let (Some(until), Some(other)) = (v.protected_until(now()), &v.pool) {
            if !force {
                return Err(CatalogError::Protected {
                    label: v.label,
                    pool: other.clone(),
                    until: format_time(until),
                });
            }
        }
        self.write(|tx| {
            tx.execute(
                "UPDATE volumes SET pool_id = ?1 WHERE id = ?2",
                params![p.id, v.id],
            )?;
            Ok(())
        })?;
        self.volume(label)
    }

    /// Changes a volume's status, if the transition is allowed.
    pub fn set_volume_status(
        &mut self,
        label: &str,
        to: VolumeStatus,
        error: Option<&str>,
    ) -> Result<Volume> {
        let v = self.volume(label)?;
        if !v.status.can_become(to) {
            return Err(CatalogError::Transition {
                label: v.label,
                from: v.status,
                to,
            });
        }
        self.write(|tx| {
            tx.execute(
                "UPDATE volumes SET status = ?1, error = ?2 WHERE id = ?3",
                params![to.as_str(), error, v.id],
            )?;
            Ok(())
        })?;
        self.volume(label)
    }

    /// Counts `bytes` more on the volume and at least `tape_files` tape files on it.
    pub fn record_volume_written(
        &mut self,
        volume_id: i64,
        bytes: i64,
        tape_files: i64,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE volumes SET used = used + ?2, tape_files = MAX(tape_files, ?3)
                 WHERE id = ?1",
                params![volume_id, bytes, tape_files],
            )?;
            Ok(())
        })
    }

    /// Stores a drive's counters for a session (`phase`: before, after or sample) as JSON.
    pub fn record_drive_stats(
        &mut self,
        drive: &str,
        volume_id: Option<i64>,
        backup_id: Option<i64>,
        phase: &str,
        counters: &serde_json::Value,
    ) -> Result<()> {
        let text = counters.to_string();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO drive_stats (drive, volume_id, backup_id, at, phase, counters)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![drive, volume_id, backup_id, now(), phase, text],
            )?;
            Ok(())
        })
    }

    /// Logs a drive or medium error met while writing or reading a volume.
    pub fn record_tape_error(&mut self, e: &TapeErrorRecord<'_>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO tape_errors (volume_id, backup_id, drive, at, kind, position, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    e.volume_id,
                    e.backup_id,
                    e.drive,
                    now(),
                    e.kind,
                    e.position,
                    e.detail
                ],
            )?;
            Ok(())
        })
    }

    /// Refuses to overwrite a volume whose data is not expired, unless forced.
    pub fn check_overwritable(&self, v: &Volume, force: bool) -> Result<()> {
        if force {
            return Ok(());
        }
        match v.protected_until(now()) {
            Some(until) => Err(CatalogError::Protected {
                label: v.label.clone(),
                pool: v.pool.clone().unwrap_or_else(|| "none".into()),
                until: format_time(until),
            }),
            None => Ok(()),
        }
    }

    /// Records a label just written at BOT: the volume starts a new pass, empty.
    /// Backups that were on it no longer have a copy there.
    pub fn record_label(&mut self, rec: &LabelRecord<'_>) -> Result<Volume> {
        valid_label(rec.label)?;
        let pool_id = rec.pool.map(|p| self.pool(p)).transpose()?.map(|p| p.id);
        let existing = self.find_volume(rec.label)?;
        if let Some(v) = &existing {
            if !v.status.can_become(VolumeStatus::Empty) {
                return Err(CatalogError::Transition {
                    label: v.label.clone(),
                    from: v.status,
                    to: VolumeStatus::Empty,
                });
            }
        }
        let at = now();
        self.write(|tx| {
            if let Some(v) = &existing {
                // The copies on it are gone; the history of what was there stays.
                tx.execute("DELETE FROM segments WHERE volume_id = ?1", [v.id])?;
                tx.execute(
                    "UPDATE backup_volumes SET overwritten = 1 WHERE volume_id = ?1",
                    [v.id],
                )?;
            }
            tx.execute(
                "INSERT INTO volumes (label, passes) VALUES (?1, 0) ON CONFLICT (label) DO NOTHING",
                [rec.label],
            )?;
            tx.execute(
                "UPDATE volumes SET barcode = COALESCE(?2, barcode), uuid = ?3,
                    pool_id = COALESCE(?4, pool_id), media = COALESCE(?5, media),
                    capacity = COALESCE(?6, capacity), used = ?7, status = 'empty',
                    location = COALESCE(?8, location), block_size = ?9, tape_files = 1,
                    expires_at = NULL, passes = passes + 1, labelled_at = ?10, error = NULL
                 WHERE label = ?1",
                params![
                    rec.label,
                    rec.barcode,
                    rec.uuid,
                    pool_id,
                    rec.media,
                    rec.capacity,
                    rec.used,
                    rec.location,
                    rec.block_size,
                    at
                ],
            )?;
            Ok(())
        })?;
        self.volume(rec.label)
    }
}

fn valid_label(label: &str) -> Result<()> {
    if label.is_empty()
        || label.len() > 32
        || !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(CatalogError::Invalid(format!(
            "`{label}` is not a usable volume label: up to 32 letters, digits, `-`, `_`, `.`"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::PoolKind;

    fn cat() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        (dir, cat)
    }

    #[test]
    fn transitions_are_enforced_in_one_place() {
        use VolumeStatus::*;
        assert!(Empty.can_become(Appendable));
        assert!(Appendable.can_become(Full));
        assert!(Full.can_become(Empty));
        assert!(!Full.can_become(Appendable));
        assert!(!Retired.can_become(Empty));
        assert!(!Error.can_become(Appendable));
        let (_d, mut cat) = cat();
        cat.register_volume("T1", None, None).unwrap();
        cat.set_volume_status("T1", Retired, None).unwrap();
        let err = cat.set_volume_status("T1", Appendable, None).unwrap_err();
        assert!(err
            .to_string()
            .contains("cannot go from retired to appendable"));
    }

    #[test]
    fn scratch_volumes_join_pools_and_unknown_labels_get_suggestions() {
        let (_d, mut cat) = cat();
        cat.create_pool("daily", PoolKind::Daily, 30).unwrap();
        cat.register_volume("TD0001L9", Some("TD0001L9"), None)
            .unwrap();
        assert_eq!(cat.volumes(Some("")).unwrap().len(), 1, "scratch");
        let v = cat.assign_pool("TD0001L9", "daily", false).unwrap();
        assert_eq!(v.pool.as_deref(), Some("daily"));
        assert_eq!(cat.volumes(Some("daily")).unwrap().len(), 1);
        assert_eq!(cat.volumes(Some("")).unwrap().len(), 0);
        let err = cat.volume("TD0001L8").unwrap_err().to_string();
        assert!(err.contains("did you mean `TD0001L9`"), "{err}");
        assert!(cat.register_volume("bad label", None, None).is_err());
    }

    #[test]
    fn unexpired_data_is_protected_with_its_date() {
        let (_d, mut cat) = cat();
        cat.create_pool("daily", PoolKind::Daily, 30).unwrap();
        cat.create_pool("weekly", PoolKind::Weekly, 60).unwrap();
        cat.register_volume("T1", None, Some("daily")).unwrap();
        cat.conn()
            .execute(
                "UPDATE volumes SET expires_at = ?1, status = 'appendable'",
                [now() + 86_400],
            )
            .unwrap();
        let v = cat.volume("T1").unwrap();
        let err = cat.check_overwritable(&v, false).unwrap_err().to_string();
        assert!(
            err.contains("protected until") && err.contains("--force"),
            "{err}"
        );
        assert!(cat.check_overwritable(&v, true).is_ok());
        assert!(cat.assign_pool("T1", "weekly", false).is_err());
        assert!(cat.assign_pool("T1", "weekly", true).is_ok());
    }
}
