//! Pools: named sets of volumes with a kind and a retention period.

use super::{closest, now, Catalog, CatalogError, Result};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    Daily,
    Weekly,
    Monthly,
    Archive,
}

impl PoolKind {
    pub const ALL: [PoolKind; 4] = [
        PoolKind::Daily,
        PoolKind::Weekly,
        PoolKind::Monthly,
        PoolKind::Archive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Daily => "daily",
            PoolKind::Weekly => "weekly",
            PoolKind::Monthly => "monthly",
            PoolKind::Archive => "archive",
        }
    }
}

impl fmt::Display for PoolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PoolKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PoolKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a pool kind: daily, weekly, monthly or archive"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pool {
    pub id: i64,
    pub name: String,
    pub kind: PoolKind,
    pub retention_days: i64,
    pub created_at: i64,
}

/// A pool with its volumes counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolSummary {
    #[serde(flatten)]
    pub pool: Pool,
    pub volumes: i64,
    pub appendable: i64,
    pub full: i64,
    pub used: i64,
    pub capacity: i64,
}

fn pool_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Pool> {
    let kind: String = r.get(2)?;
    Ok(Pool {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: kind.parse().unwrap_or(PoolKind::Daily),
        retention_days: r.get(3)?,
        created_at: r.get(4)?,
    })
}

const POOL_COLUMNS: &str = "id, name, kind, retention_days, created_at";

impl Catalog {
    /// Creates a pool; names are unique.
    pub fn create_pool(&mut self, name: &str, kind: PoolKind, retention_days: i64) -> Result<Pool> {
        if name.trim().is_empty() || name.chars().any(char::is_whitespace) {
            return Err(CatalogError::Invalid(format!(
                "`{name}` is not a usable pool name: no spaces, not empty"
            )));
        }
        if retention_days < 0 {
            return Err(CatalogError::Invalid(
                "retention must be 0 days or more".into(),
            ));
        }
        self.write(|tx| {
            let exists: Option<i64> = tx
                .query_row("SELECT id FROM pools WHERE name = ?1", [name], |r| r.get(0))
                .optional()?;
            if exists.is_some() {
                return Err(CatalogError::Invalid(format!("pool `{name}` already exists")));
            }
            tx.execute(
                "INSERT INTO pools (name, kind, retention_days, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, kind.as_str(), retention_days, now()],
            )?;
            Ok(())
        })?;
        self.pool(name)
    }

    /// The pool called `name`; an unknown name suggests the closest one.
    pub fn pool(&self, name: &str) -> Result<Pool> {
        let found = self
            .conn()
            .query_row(
                &format!("SELECT {POOL_COLUMNS} FROM pools WHERE name = ?1"),
                [name],
                pool_from_row,
            )
            .optional()
            .map_err(|e| self.map_err(e))?;
        match found {
            Some(p) => Ok(p),
            None => {
                let known: Vec<String> = self.pool_names()?;
                Err(CatalogError::UnknownPool {
                    name: name.to_string(),
                    suggestion: closest(name, known.iter().map(String::as_str)),
                    known,
                })
            }
        }
    }

    fn pool_names(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT name FROM pools ORDER BY name")?;
        let names = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(names)
    }

    /// Every pool with its volumes counted.
    pub fn pools(&self) -> Result<Vec<PoolSummary>> {
        let mut stmt = self.conn().prepare(
            "SELECT p.id, p.name, p.kind, p.retention_days, p.created_at,
                    COUNT(v.id),
                    COALESCE(SUM(v.status = 'appendable'), 0),
                    COALESCE(SUM(v.status = 'full'), 0),
                    COALESCE(SUM(v.used), 0),
                    COALESCE(SUM(v.capacity), 0)
             FROM pools p LEFT JOIN volumes v ON v.pool_id = p.id
             GROUP BY p.id ORDER BY p.name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PoolSummary {
                    pool: pool_from_row(r)?,
                    volumes: r.get(5)?,
                    appendable: r.get(6)?,
                    full: r.get(7)?,
                    used: r.get(8)?,
                    capacity: r.get(9)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        (dir, cat)
    }

    #[test]
    fn pools_are_created_listed_and_found() {
        let (_d, mut cat) = cat();
        cat.create_pool("daily", PoolKind::Daily, 30).unwrap();
        cat.create_pool("archive", PoolKind::Archive, 3650).unwrap();
        let all = cat.pools().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].pool.name, "archive");
        assert_eq!(all[0].volumes, 0);
        assert!(matches!(
            cat.create_pool("daily", PoolKind::Daily, 1),
            Err(CatalogError::Invalid(_))
        ));
        let err = cat.pool("dialy").unwrap_err().to_string();
        assert!(err.contains("did you mean `daily`"), "{err}");
        assert!("hourly".parse::<PoolKind>().is_err());
    }
}
