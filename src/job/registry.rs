//! Placeholder: the run directory (replaced by the socket work).
use super::JobKind;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub fn run_dir(home: &Path) -> PathBuf {
    home.join("run")
}

pub fn ensure_run_dir(dir: &Path) -> Result<(), RegistryError> {
    std::fs::create_dir_all(dir)?;
    Ok(())
}

pub fn new_id(_dir: &Path, kind: JobKind) -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("{kind}-{}", &u[..6])
}

pub fn running_buffers(_dir: &Path, _except: &str) -> Vec<(String, u64)> {
    Vec::new()
}

pub struct MemoryTurn;

pub fn memory_lock(_dir: &Path) -> Result<MemoryTurn, RegistryError> {
    Ok(MemoryTurn)
}
