//! Linux `st` tape driver (temporary stand-in while the real driver is written).
use super::*;
use std::path::Path;
pub struct StDrive {
    name: String,
}
impl StDrive {
    pub fn open(name: &str, _path: &Path) -> Result<StDrive> {
        Ok(StDrive { name: name.into() })
    }
    fn nr<T>(&self) -> Result<T> {
        Err(TapeError::NotReady {
            drive: self.name.clone(),
        })
    }
}
impl TapeDrive for StDrive {
    fn name(&self) -> &str {
        &self.name
    }
    fn status(&mut self) -> Result<DriveStatus> {
        self.nr()
    }
    fn block_limits(&mut self) -> Result<BlockLimits> {
        self.nr()
    }
    fn set_block_size(&mut self, _: u32) -> Result<()> {
        self.nr()
    }
    fn write_block(&mut self, _: &[u8]) -> Result<WriteOutcome> {
        self.nr()
    }
    fn write_filemarks(&mut self, _: u32, _: bool) -> Result<()> {
        self.nr()
    }
    fn read_block(&mut self, _: &mut [u8]) -> Result<ReadOutcome> {
        self.nr()
    }
    fn rewind(&mut self) -> Result<()> {
        self.nr()
    }
    fn space_filemarks(&mut self, _: i32) -> Result<SpaceOutcome> {
        self.nr()
    }
    fn space_to_eod(&mut self) -> Result<()> {
        self.nr()
    }
    fn position(&mut self) -> Result<u64> {
        self.nr()
    }
    fn locate(&mut self, _: u64) -> Result<()> {
        self.nr()
    }
    fn load(&mut self) -> Result<()> {
        self.nr()
    }
    fn unload(&mut self) -> Result<()> {
        self.nr()
    }
    fn erase(&mut self) -> Result<()> {
        self.nr()
    }
}
