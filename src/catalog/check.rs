//! `catalog check`: SQLite's own integrity check plus the catalogue's invariants.

use super::{Catalog, CatalogError, Result};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// What the check found; empty lists mean a healthy catalogue.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Lines from `PRAGMA integrity_check` and `foreign_key_check` other than "ok".
    pub integrity: Vec<String>,
    /// Broken invariants, one line each.
    pub problems: Vec<String>,
    /// Facts worth knowing that are not damage (e.g. backups left running).
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.integrity.is_empty() && self.problems.is_empty()
    }
}

/// Invariants as queries returning one description per violation.
const INVARIANTS: &[(&str, &str)] = &[
    (
        "a volume cannot hold more than its capacity",
        "SELECT 'volume ' || label || ': used ' || used || ' > capacity ' || capacity
         FROM volumes WHERE capacity IS NOT NULL AND used > capacity",
    ),
    (
        "a volume with backup data is not empty",
        "SELECT 'volume ' || v.label || ' is empty but holds ' || COUNT(*) || ' backups'
         FROM volumes v JOIN backup_volumes bv ON bv.volume_id = v.id AND bv.overwritten = 0
         JOIN backups b ON b.id = bv.backup_id AND b.status != 'running'
         WHERE v.status = 'empty' GROUP BY v.id",
    ),
    (
        "a read-only volume takes no backup",
        "SELECT 'volume ' || v.label || ' is read-only (' || v.read_only || ') but backup '
                || b.uuid || ' was written to it'
         FROM volumes v JOIN backup_volumes bv ON bv.volume_id = v.id AND bv.overwritten = 0
         JOIN backups b ON b.id = bv.backup_id
         WHERE v.read_only IS NOT NULL AND b.origin = 'tapedeck'",
    ),
    (
        "a finished backup has an end time",
        "SELECT 'backup ' || uuid || ' is ' || status || ' without an end time'
         FROM backups WHERE status != 'running' AND finished_at IS NULL",
    ),
    (
        "the name index covers every name",
        "SELECT 'names above id ' || p.indexed_to || ' are not in the search index'
         FROM fts_progress p WHERE p.indexed_to < (SELECT COALESCE(MAX(id), 1) FROM names)",
    ),
    (
        "a backup built on a parent names it",
        "SELECT 'backup ' || uuid || ' (' || kind || ') has no parent backup: its chain cannot be restored'
         FROM backups WHERE kind != 'full' AND parent_id IS NULL AND origin = 'tapedeck'
           AND status = 'complete'",
    ),
    (
        "a backup's parent is in the catalogue",
        "SELECT 'backup ' || b.uuid || ' (' || b.kind || ') builds on backup #' || b.parent_id
                || ', which the catalogue does not have'
         FROM backups b WHERE b.parent_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM backups p WHERE p.id = b.parent_id)",
    ),
    (
        "a complete backup builds on a complete parent",
        "SELECT 'backup ' || b.uuid || ' (' || b.kind || ') builds on backup ' || p.uuid
                || ', which is ' || p.status
         FROM backups b JOIN backups p ON p.id = b.parent_id
         WHERE b.status = 'complete' AND p.status != 'complete'",
    ),
    (
        "a backup that can be read builds on a parent that can be read",
        "SELECT 'backup ' || b.uuid || ' (' || b.kind || ') builds on backup ' || p.uuid
                || ', whose copy on volume ' || v.label || ' was overwritten'
         FROM backups b JOIN backups p ON p.id = b.parent_id
         JOIN backup_volumes pv ON pv.backup_id = p.id AND pv.overwritten = 1
         JOIN volumes v ON v.id = pv.volume_id
         WHERE b.status = 'complete'
           AND NOT EXISTS (SELECT 1 FROM backup_volumes bv
                           WHERE bv.backup_id = b.id AND bv.overwritten = 1)",
    ),
];

/// What a cartridge of the library holds at its start, as `catalog check` compares it
/// with the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLabel {
    pub barcode: String,
    /// The tapedeck label on it: its name and uuid. `None`: blank or not tapedeck's.
    pub label: Option<(String, String)>,
    /// Nothing is recorded after the label: no backup was ever written there.
    pub only_label: bool,
}

impl Catalog {
    /// Whether the catalogue knows no volume and no backup (a new one, or one emptied or
    /// replaced: with labelled volumes in the library it has been lost). A file without
    /// the schema (opened read-only, not migrated) counts as empty.
    pub fn is_empty(&self) -> Result<bool> {
        if !self.has_schema()? {
            return Ok(true);
        }
        let known = self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM volumes) OR EXISTS (SELECT 1 FROM backups)",
            [],
            |r| r.get::<_, bool>(0),
        )?;
        Ok(!known)
    }

    /// Whether the catalogue's tables exist: a file opened read-only before tapedeck ever
    /// wrote it (new, truncated, replaced) has none, and knows nothing.
    fn has_schema(&self) -> Result<bool> {
        Ok(self.version()? > 0)
    }

    /// The catalogue against what the library's cartridges say: a labelled volume the
    /// catalogue does not know, or knows with another uuid, and a labelled volume of the
    /// catalogue whose cartridge is in the library without its label. One line each, in
    /// `report`: a label the catalogue does not know on a cartridge holding nothing else
    /// is a note (a labelling cut short before its record: nothing is lost, and allocation
    /// takes such a cartridge as blank), not damage.
    pub fn check_library(&self, held: &[HeldLabel], report: &mut CheckReport) -> Result<()> {
        let problems = &mut report.problems;
        let notes = &mut report.notes;
        let schema = self.has_schema()?;
        for h in held {
            let Some((label, uuid)) = &h.label else {
                continue;
            };
            let known = match schema {
                true => self.find_volume(label)?,
                false => None,
            };
            match known {
                None if h.only_label => notes.push(format!(
                    "cartridge {} holds only the label of volume {label}, which the catalogue \
                     does not know (its labelling was cut short): nothing is lost, and a \
                     backup to a pool takes it as a blank cartridge",
                    h.barcode
                )),
                None => problems.push(format!(
                    "volume {label} (cartridge {}) is labelled in the library but the \
                     catalogue does not know it: `tapedeck catalog rebuild --tape {label}`",
                    h.barcode
                )),
                Some(v) if v.uuid.as_deref().is_some_and(|u| u != uuid) => problems.push(format!(
                    "volume {label}: the library's cartridge {} has label uuid {uuid}, the \
                         catalogue has {}: the tape was relabelled elsewhere",
                    h.barcode,
                    v.uuid.as_deref().unwrap_or("?")
                )),
                Some(_) => {}
            }
        }
        if !schema {
            return Ok(());
        }
        for v in self.volumes(None)? {
            let Some(uuid) = &v.uuid else { continue };
            if held
                .iter()
                .any(|h| h.label.as_ref().is_some_and(|(l, _)| *l == v.label))
            {
                continue;
            }
            let cartridge = held
                .iter()
                .find(|h| v.barcode.as_deref() == Some(h.barcode.as_str()) || h.barcode == v.label);
            if let Some(h) = cartridge {
                let holds = match &h.label {
                    Some((other, other_uuid)) => format!("label {other} (uuid {other_uuid})"),
                    None => "no tapedeck label".into(),
                };
                problems.push(format!(
                    "volume {} (uuid {uuid}): its cartridge {} in the library holds {holds}",
                    v.label, h.barcode
                ));
            }
        }
        Ok(())
    }

    /// Runs every check; a report, not an error, describes what is wrong.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let mut stmt = self.conn().prepare("PRAGMA integrity_check")?;
        for line in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let line = line?;
            if line != "ok" {
                report.integrity.push(line);
            }
        }
        if !self.has_schema()? {
            report.notes.push(
                "the catalogue has no tables yet (opened read-only, they were not created): \
                 it knows nothing"
                    .into(),
            );
            return Ok(report);
        }
        let mut stmt = self.conn().prepare("PRAGMA foreign_key_check")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let table: String = r.get(0)?;
            let rowid: Option<i64> = r.get(1)?;
            let parent: String = r.get(2)?;
            report.integrity.push(format!(
                "{table} row {} points at a missing {parent} row",
                rowid.map_or("?".into(), |r| r.to_string())
            ));
        }
        for (what, sql) in INVARIANTS {
            let mut stmt = self.conn().prepare(sql)?;
            for line in stmt.query_map([], |r| r.get::<_, String>(0))? {
                report.problems.push(format!("{}: {what}", line?));
            }
        }
        self.check_members(&mut report)?;
        let running: Vec<String> = self
            .conn()
            .prepare("SELECT uuid || ' (pid ' || COALESCE(pid, '?') || ' on ' || COALESCE(host, '?') || ')' FROM backups WHERE status = 'running'")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for r in running {
            report.notes.push(format!("backup {r} is marked running"));
        }
        Ok(report)
    }
}

impl Catalog {
    /// The packed member records: each decodes to as many members as it claims, every
    /// member's part is a volume its backup wrote, and a split file's parts cover it.
    fn check_members(&self, report: &mut CheckReport) -> Result<()> {
        let mut parts: HashSet<(i64, i64)> = HashSet::new();
        let mut stmt = self
            .conn()
            .prepare("SELECT backup_id, seq FROM backup_volumes")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            parts.insert((r.get(0)?, r.get(1)?));
        }
        let mut split: HashMap<(i64, i64), (i64, i64)> = HashMap::new();
        let mut stmt = self.conn().prepare(
            "SELECT backup_id, file_seq, SUM(length), COUNT(*), MAX(seq) FROM segments
             GROUP BY backup_id, file_seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (total, n, last): (i64, i64, i64) = (r.get(2)?, r.get(3)?, r.get(4)?);
            let key = (r.get(0)?, r.get(1)?);
            if last + 1 != n {
                report.problems.push(format!(
                    "file {} of backup {}: its parts are not numbered 0..{n}",
                    key.1, key.0
                ));
            }
            split.insert(key, (total, n));
        }
        // Every backup's records, and records whose backup is gone, through the readers' path.
        let mut stmt = self.conn().prepare(
            "SELECT id FROM backups UNION SELECT DISTINCT backup_id FROM members ORDER BY 1",
        )?;
        let backup_ids = stmt
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for backup_id in backup_ids {
            let walked = self.member_records(backup_id, |seq, _, m| {
                if let Some(p) = m.part {
                    if !parts.contains(&(backup_id, p)) {
                        report.problems.push(format!(
                            "file {seq} of backup {backup_id} is in part {p}, which the backup did not write"
                        ));
                    }
                }
                if m.parts > 1 {
                    match split.get(&(backup_id, seq)) {
                        Some(&(total, n)) if total == m.size && n == m.parts => {}
                        Some(&(total, n)) => report.problems.push(format!(
                            "file {seq} of backup {backup_id}: {n} parts hold {total} bytes, \
                             it has {} parts and {} bytes",
                            m.parts, m.size
                        )),
                        None => report.problems.push(format!(
                            "file {seq} of backup {backup_id} is split in {} parts but none is recorded",
                            m.parts
                        )),
                    }
                }
                Ok(())
            });
            match walked {
                Ok(()) => {}
                Err(CatalogError::Damaged {
                    backup,
                    record,
                    what,
                    volumes,
                    ..
                }) => report.problems.push(format!(
                    "backup {backup}{}: {what}{}",
                    record
                        .map(|r| format!(", member record {r}"))
                        .unwrap_or_default(),
                    match volumes.is_empty() {
                        true => String::new(),
                        false => format!(" (rebuild {})", volumes.join(", ")),
                    }
                )),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_catalogue_is_healthy_and_damage_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        assert!(cat.check().unwrap().is_ok());
        cat.conn()
            .execute(
                "INSERT INTO volumes (label, status, capacity, used) VALUES ('T', 'empty', 10, 20)",
                [],
            )
            .unwrap();
        let report = cat.check().unwrap();
        assert!(!report.is_ok());
        assert!(report.problems[0].contains("volume T: used 20 > capacity 10"));
    }

    #[test]
    fn a_backup_written_to_a_read_only_volume_is_damage() {
        use crate::catalog::{BackupStatus, NewBackup};
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        let v = cat.register_volume("RO1", None, None).unwrap();
        cat.conn()
            .execute("UPDATE volumes SET read_only = 'foreign'", [])
            .unwrap();
        for (uuid, origin) in [("imported", "import"), ("appended", "tapedeck")] {
            let id = cat
                .begin_backup(&NewBackup {
                    uuid,
                    kind: "full",
                    started_at: 1,
                    origin,
                    ..Default::default()
                })
                .unwrap();
            cat.add_backup_volume(id, 0, v.id, Some(1), Some(2))
                .unwrap();
            cat.finish_backup(id, BackupStatus::Complete, 2, None)
                .unwrap();
        }
        let report = cat.check().unwrap();
        assert_eq!(
            report.problems,
            [
                "volume RO1 is read-only (foreign) but backup appended was written to it: \
              a read-only volume takes no backup"
            ],
        );
    }

    /// A SQLite file without the catalogue's tables, as a read-only open finds it (it
    /// cannot create them).
    fn schema_less_read_only(dir: &std::path::Path) -> Catalog {
        let path = dir.join("c.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE unrelated (x); DROP TABLE unrelated;")
            .unwrap();
        Catalog::open_read_only(&path).unwrap()
    }

    #[test]
    fn a_schema_less_read_only_catalogue_is_checked_as_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let cat = schema_less_read_only(dir.path());
        assert!(cat.is_empty().unwrap());
        let report = cat.check().unwrap();
        assert!(report.is_ok(), "{report:?}");
        let held = [HeldLabel {
            barcode: "TD0001L9".into(),
            label: Some(("TD0001L9".into(), "u-1".into())),
            only_label: false,
        }];
        let mut report = CheckReport::default();
        cat.check_library(&held, &mut report).unwrap();
        let problems = report.problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("catalogue does not know it")
                && problems[0].contains("tapedeck catalog rebuild --tape TD0001L9"),
            "{problems:?}"
        );
    }
}
