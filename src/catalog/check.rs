//! `catalog check`: SQLite's own integrity check plus the catalogue's invariants.

use super::{members, Catalog, Result};
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
        let mut stmt = self
            .conn()
            .prepare("SELECT backup_id, first_seq, count, data FROM members")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (backup_id, first_seq, count): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let data = r.get_ref(3)?.as_blob().unwrap_or_default();
            let decoded = match members::decode(data) {
                Ok(d) => d,
                Err(e) => {
                    report.problems.push(format!(
                        "members record {first_seq} of backup {backup_id}: {e}"
                    ));
                    continue;
                }
            };
            if decoded.len() as i64 != count {
                report.problems.push(format!(
                    "members record {first_seq} of backup {backup_id} holds {} members, not {count}",
                    decoded.len()
                ));
            }
            for (i, m) in decoded.iter().enumerate() {
                let seq = first_seq + i as i64;
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
}
