//! Which cartridge a backup to a pool should go on, among those a changer holds: the
//! pool's appendable volume, else an empty one of the pool, else one of the pool whose data
//! has expired (recycled), else a labelled scratch volume, else a cartridge the catalogue
//! has never seen (used only if it reads blank, or holds nothing but a tapedeck label the
//! catalogue does not know: a labelling cut short before its record). A volume of another pool, one whose
//! data is still protected, a read-only one, or a cartridge the drive cannot write (by
//! the LTO rules, [`crate::tape::lto`]) is never a candidate.

use crate::catalog::{Catalog, CatalogError, VolumeStatus};
use crate::tape::{lto, Element, Inventory};

/// Why a cartridge qualifies, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// The pool's volume with room left: the backup is appended.
    Append,
    /// A labelled volume of the pool holding nothing yet.
    Empty,
    /// A volume of the pool whose data has expired: relabelled, its old copies dropped.
    Recycle,
    /// A labelled volume of no pool holding nothing: it joins the pool.
    Scratch,
    /// A cartridge the catalogue does not know: labelled into the pool if it reads blank or
    /// holds only a label the catalogue does not know.
    Unknown,
}

impl Fit {
    pub fn describe(self) -> &'static str {
        match self {
            Fit::Append => "appendable volume of the pool",
            Fit::Empty => "empty volume of the pool",
            Fit::Recycle => "expired volume of the pool (will be relabelled)",
            Fit::Scratch => "empty scratch volume",
            Fit::Unknown => "cartridge the catalogue does not know (used if blank)",
        }
    }
}

/// A cartridge that may take the backup, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    pub barcode: String,
    /// The catalogue's label for it, if it has one.
    pub label: Option<String>,
    pub fit: Fit,
    pub element: Element,
}

/// The cartridges of `inventory` (drives and storage slots, not the mail slots) that may
/// take a backup of `pool` in `drive`, whose LTO generation is `drive_generation` (when
/// known), best first; among equals, one already in `drive` first, then the most recently
/// written (so one volume fills before the next is started).
pub fn candidates(
    cat: &Catalog,
    pool: &str,
    inventory: &Inventory,
    drive: Element,
    drive_generation: Option<u8>,
    now: i64,
) -> Result<Vec<Candidate>, CatalogError> {
    let mut found = Vec::new();
    for e in inventory.drives.iter().chain(&inventory.slots) {
        let Some(barcode) = &e.barcode else { continue };
        let volume = cat.find_volume(barcode)?;
        let media = lto::cartridge_generation(
            volume.as_ref().and_then(|v| v.media.as_deref()),
            Some(barcode),
        );
        if !lto::may_take(drive_generation, media, true) {
            continue;
        }
        let (fit, written) = match &volume {
            Some(v) if v.read_only.is_some() => continue,
            None => (Fit::Unknown, None),
            Some(v) if v.pool.as_deref() == Some(pool) => {
                // Expired means a retention that ran out; a volume with no expiry yet is
                // being written (its backup sets the expiry when it ends).
                let expired = v.expires_at.is_some() && v.protected_until(now).is_none();
                match v.status {
                    VolumeStatus::Appendable => (Fit::Append, v.written_at),
                    VolumeStatus::Empty => (Fit::Empty, None),
                    VolumeStatus::Full if expired => (Fit::Recycle, v.written_at),
                    _ => continue,
                }
            }
            Some(v) if v.pool.is_none() && v.status == VolumeStatus::Empty => (Fit::Scratch, None),
            // Another pool's volume, or unpooled data of unknown protection: never.
            Some(_) => continue,
        };
        found.push((
            fit,
            e.element != drive,
            // Appending: the most recently written first; recycling: the oldest first.
            match fit {
                Fit::Append => -written.unwrap_or(0),
                _ => written.unwrap_or(0),
            },
            Candidate {
                barcode: barcode.clone(),
                label: volume.map(|v| v.label),
                fit,
                element: e.element,
            },
        ));
    }
    found.sort_by_key(|f| (f.0, f.1, f.2));
    Ok(found.into_iter().map(|(.., c)| c).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{BackupStatus, NewBackup, PoolKind};
    use crate::tape::ElementStatus;

    fn slot(n: u32, barcode: &str) -> ElementStatus {
        ElementStatus {
            element: Element::Slot(n),
            barcode: Some(barcode.into()),
            drive_name: None,
            source: None,
        }
    }

    /// Writes a backup of `pool` onto `label` that ends at `at`.
    fn write(cat: &mut Catalog, label: &str, pool: &str, at: i64) {
        let v = cat.volume(label).unwrap();
        let id = cat
            .begin_backup(&NewBackup {
                uuid: &format!("{label}-{at}"),
                kind: "full",
                pool: Some(pool),
                started_at: at,
                origin: "tapedeck",
                ..Default::default()
            })
            .unwrap();
        cat.add_backup_volume(id, 0, v.id, Some(1), Some(2))
            .unwrap();
        cat.finish_backup(id, BackupStatus::Complete, at, None)
            .unwrap();
    }

    #[test]
    fn the_pools_volumes_come_first_and_others_never() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        cat.create_pool("daily", PoolKind::Daily, 7).unwrap();
        cat.create_pool("monthly", PoolKind::Monthly, 90).unwrap();
        let now = crate::catalog::now();
        for (label, pool) in [
            ("APP", Some("daily")),
            ("EMP", Some("daily")),
            ("OLD", Some("daily")),
            ("FRESH", Some("daily")),
            ("SCR", None),
            ("MON", Some("monthly")),
        ] {
            cat.register_volume(label, None, None).unwrap();
            if let Some(p) = pool {
                cat.assign_pool(label, p, false).unwrap();
            }
        }
        write(&mut cat, "APP", "daily", now - 60);
        // Written long ago and full: its 7 days are over.
        write(&mut cat, "OLD", "daily", now - 30 * 86400);
        cat.set_volume_status("OLD", VolumeStatus::Full, None)
            .unwrap();
        // Full but still protected.
        write(&mut cat, "FRESH", "daily", now - 86400);
        cat.set_volume_status("FRESH", VolumeStatus::Full, None)
            .unwrap();
        write(&mut cat, "MON", "monthly", now - 60);
        // Full, written by a backup still running: no expiry yet, never recycled.
        cat.register_volume("BUSY", None, None).unwrap();
        cat.assign_pool("BUSY", "daily", false).unwrap();
        cat.set_volume_status("BUSY", VolumeStatus::Appendable, None)
            .unwrap();
        cat.set_volume_status("BUSY", VolumeStatus::Full, None)
            .unwrap();
        let inventory = Inventory {
            drives: vec![ElementStatus {
                element: Element::Drive(0),
                barcode: Some("MON".into()),
                drive_name: Some("lto9".into()),
                source: Some(Element::Slot(7)),
            }],
            slots: vec![
                slot(1, "OLD"),
                slot(2, "SCR"),
                slot(3, "NEW"),
                slot(4, "EMP"),
                slot(5, "APP"),
                slot(6, "FRESH"),
                slot(8, "BUSY"),
            ],
            import_export: vec![slot(9, "MAIL")],
        };
        let got = candidates(&cat, "daily", &inventory, Element::Drive(0), None, now).unwrap();
        let order: Vec<(&str, Fit)> = got.iter().map(|c| (c.barcode.as_str(), c.fit)).collect();
        assert_eq!(
            order,
            vec![
                ("APP", Fit::Append),
                ("EMP", Fit::Empty),
                ("OLD", Fit::Recycle),
                ("SCR", Fit::Scratch),
                ("NEW", Fit::Unknown),
            ]
        );
        assert_eq!(got[0].element, Element::Slot(5));
    }

    #[test]
    fn only_cartridges_the_drive_writes_and_never_read_only_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        cat.create_pool("archive", PoolKind::Archive, 7).unwrap();
        cat.register_volume("RO0001L6", None, None).unwrap();
        cat.conn()
            .execute("UPDATE volumes SET read_only = 'foreign'", [])
            .unwrap();
        let inventory = Inventory {
            drives: vec![],
            slots: vec![
                slot(1, "TD0001L9"),
                slot(2, "TD0002L8"),
                slot(3, "TD0003L6"),
                slot(4, "TD0004L5"),
                slot(5, "TD0005L4"),
                slot(6, "RO0001L6"),
            ],
            import_export: vec![],
        };
        let now = crate::catalog::now();
        let picked = |generation| -> Vec<String> {
            candidates(
                &cat,
                "archive",
                &inventory,
                Element::Drive(0),
                Some(generation),
                now,
            )
            .unwrap()
            .into_iter()
            .map(|c| c.barcode)
            .collect()
        };
        assert_eq!(picked(6), ["TD0003L6", "TD0004L5"]);
        assert_eq!(picked(9), ["TD0001L9", "TD0002L8"]);
    }
}
