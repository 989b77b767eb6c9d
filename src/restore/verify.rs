//! Verify: the members of a volume or a backup read back and compared with the
//! catalogue (BLAKE3, or with `--quick` headers and positions only). The reading is
//! restore's ([`super::read::execute`] in [`super::read::Mode::Verify`]); this module
//! picks the members.

use super::plan::{self, Member, PlanError, Selection};
use crate::catalog::Catalog;

/// What to verify.
#[derive(Debug, Clone)]
pub enum Target {
    Tape(String),
    Backup(String),
}

/// The members to verify. A volume or backup the catalogue holds no members of is bad
/// input: there is nothing to compare the tape with.
pub fn members(cat: &Catalog, target: &Target) -> Result<Vec<Member>, PlanError> {
    let selection = match target {
        Target::Tape(label) => Selection::Tape(label.clone()),
        Target::Backup(id) => Selection::Backup(id.clone()),
    };
    let members = plan::select(cat, &selection, &[])?;
    if members.is_empty() {
        let what = match target {
            Target::Tape(label) => format!("volume {label}"),
            Target::Backup(id) => format!("backup {id}"),
        };
        return Err(PlanError::Bad(format!(
            "the catalogue holds no members of {what}: nothing to compare the tape with \
             (its index was never recorded, or the backup wrote nothing)"
        )));
    }
    Ok(members)
}
