//! `catalog check`: SQLite's own integrity check plus the catalogue's invariants.

use super::{Catalog, Result};
use serde::Serialize;

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
        "a split file's parts must cover it exactly, numbered from 0",
        "SELECT 'file ' || f.seq || ' of backup ' || f.backup_id || ': parts hold ' || s.total
                || ' of ' || f.size || ' bytes in ' || s.n || ' of ' || f.parts || ' parts'
         FROM files f JOIN (SELECT backup_id, file_seq, SUM(length) AS total, COUNT(*) AS n,
                                   MAX(seq) AS last
                            FROM segments GROUP BY backup_id, file_seq) s
              ON s.backup_id = f.backup_id AND s.file_seq = f.seq
         WHERE s.total != f.size OR s.n != f.parts OR s.last + 1 != s.n",
    ),
    (
        "a file's part points at a volume the backup wrote",
        "SELECT 'file ' || f.seq || ' of backup ' || f.backup_id || ' is in unknown part ' || f.part
         FROM files f WHERE f.part IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM backup_volumes bv WHERE bv.backup_id = f.backup_id AND bv.seq = f.part)",
    ),
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
        "a finished backup has an end time",
        "SELECT 'backup ' || uuid || ' is ' || status || ' without an end time'
         FROM backups WHERE status != 'running' AND finished_at IS NULL",
    ),
    (
        "the name index covers every name",
        "SELECT 'names above id ' || p.indexed_to || ' are not in the search index'
         FROM fts_progress p WHERE p.indexed_to < (SELECT COALESCE(MAX(id), 1) FROM names)",
    ),
];

impl Catalog {
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
}
