//! Writing restored members under the target directory, and nowhere else.
//!
//! Every path is taken apart into components: an absolute path, `..`, or a component that
//! is not a plain name is refused. Directories are walked from an open descriptor of the
//! target with `openat(O_NOFOLLOW | O_DIRECTORY)`, one component at a time, so a symlink
//! on the way (one the tape itself created a moment ago, or one someone planted) is
//! refused instead of followed. New files are created with `O_EXCL | O_NOFOLLOW`; a file
//! replaced under `--overwrite` is written to a temporary name and renamed over the old
//! one only once it is complete and its BLAKE3 matched. Directory metadata and hard links
//! are applied at the end ([`Extractor::finish`]), deepest directories first, so that
//! restoring into a directory never changes its restored mtime and read-only directories
//! can be filled.

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to do when the target already has something at a member's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Overwrite {
    /// Keep what is there (the default).
    Never,
    /// Replace it when it is older than the member.
    Older,
    /// Always replace it (never a directory with a non-directory).
    Always,
}

/// Why a member was not written.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The member would be written outside the target or through a symlink.
    #[error("refused: {0}")]
    Refused(String),
    /// Something is there and the overwrite policy keeps it.
    #[error("kept the existing {0}")]
    Kept(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl ExtractError {
    fn io(path: &str, source: impl Into<io::Error>) -> ExtractError {
        ExtractError::Io {
            path: path.to_string(),
            source: source.into(),
        }
    }
}

/// The metadata to give a restored member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub user: Option<String>,
    pub group: Option<String>,
    pub mtime_ns: i64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// A path inside the target, checked: plain components only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePath {
    parts: Vec<String>,
}

impl SafePath {
    /// Checks a member path (relative, `/`-separated; a catalogue path's leading `/` is
    /// taken off by the caller). Empty and `.` components are dropped.
    pub fn new(path: &str) -> Result<SafePath, ExtractError> {
        if path.starts_with('/') {
            return Err(ExtractError::Refused(format!(
                "`{path}` is an absolute path"
            )));
        }
        let mut parts = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    return Err(ExtractError::Refused(format!(
                        "`{path}` climbs out of the target with `..`"
                    )))
                }
                p if p.contains('\0') => {
                    return Err(ExtractError::Refused(format!(
                        "`{}` holds a NUL byte",
                        path.escape_debug()
                    )))
                }
                p => parts.push(p.to_string()),
            }
        }
        if parts.is_empty() {
            return Err(ExtractError::Refused(format!(
                "`{path}` names the target itself"
            )));
        }
        Ok(SafePath { parts })
    }

    /// The path of a catalogue entry (absolute, as recorded) under the target.
    pub fn from_catalogue(path: &str) -> Result<SafePath, ExtractError> {
        match path.strip_prefix('/') {
            Some(rest) if !rest.starts_with('/') => SafePath::new(rest),
            _ => Err(ExtractError::Refused(format!(
                "`{path}` is not a path the catalogue writes"
            ))),
        }
    }

    pub fn display(&self) -> String {
        self.parts.join("/")
    }

    fn parent(&self) -> &[String] {
        &self.parts[..self.parts.len() - 1]
    }

    fn name(&self) -> &str {
        &self.parts[self.parts.len() - 1]
    }
}

/// A file being written.
pub struct OpenFile {
    file: File,
    dir: Arc<OwnedFd>,
    path: SafePath,
    /// Where it is being written: its own name, or a temporary one that replaces it.
    written_as: String,
    replaces: bool,
    meta: Metadata,
}

impl OpenFile {
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), ExtractError> {
        self.file
            .write_all(data)
            .map_err(|e| ExtractError::io(&self.path.display(), e))
    }

    /// The path under the target.
    pub fn path(&self) -> String {
        self.path.display()
    }
}

/// A hard link waiting for the end of the restore.
struct PendingLink {
    path: SafePath,
    target: SafePath,
}

/// Directories to give their metadata at the end.
struct PendingDir {
    path: SafePath,
    meta: Metadata,
}

/// Writes members under one target directory.
pub struct Extractor {
    root: Arc<OwnedFd>,
    root_path: PathBuf,
    overwrite: Overwrite,
    /// Running as root: owners are restored.
    same_owner: bool,
    /// Open directories by path (components joined with `/`), bounded.
    dirs: HashMap<String, Arc<OwnedFd>>,
    pending_dirs: Vec<PendingDir>,
    pending_links: Vec<PendingLink>,
    users: HashMap<String, Option<u32>>,
    groups: HashMap<String, Option<u32>>,
    temp_counter: u64,
}

/// Open directory descriptors kept at most (tar order visits a directory's members
/// together, so a small cache hits almost always).
const DIR_CACHE: usize = 256;

fn timespec(ns: i64) -> TimeSpec {
    TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl Extractor {
    /// Writes under `root`, creating it if needed.
    pub fn new(root: &Path, overwrite: Overwrite) -> Result<Extractor, ExtractError> {
        let shown = root.display().to_string();
        std::fs::create_dir_all(root).map_err(|e| ExtractError::io(&shown, e))?;
        let fd = nix::fcntl::open(
            root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ExtractError::io(&shown, errno_io(e)))?;
        Ok(Extractor {
            root: Arc::new(fd),
            root_path: root.to_path_buf(),
            overwrite,
            same_owner: nix::unistd::geteuid().is_root(),
            dirs: HashMap::new(),
            pending_dirs: Vec::new(),
            pending_links: Vec::new(),
            users: HashMap::new(),
            groups: HashMap::new(),
            temp_counter: 0,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root_path
    }

    /// The open directory `parts` under the target, walked without following symlinks;
    /// missing directories are created when `create`.
    fn dir(&mut self, parts: &[String], create: bool) -> Result<Arc<OwnedFd>, ExtractError> {
        if parts.is_empty() {
            return Ok(self.root.clone());
        }
        let key = parts.join("/");
        if let Some(fd) = self.dirs.get(&key) {
            return Ok(fd.clone());
        }
        // Start from the deepest ancestor already open.
        let mut depth = parts.len();
        let mut cur = self.root.clone();
        while depth > 0 {
            depth -= 1;
            if depth == 0 {
                break;
            }
            if let Some(fd) = self.dirs.get(&parts[..depth].join("/")) {
                cur = fd.clone();
                break;
            }
        }
        for i in depth..parts.len() {
            let name = parts[i].as_str();
            let shown = || parts[..=i].join("/");
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let opened = match nix::fcntl::openat(cur.as_fd(), name, flags, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    match nix::sys::stat::mkdirat(
                        cur.as_fd(),
                        name,
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(ExtractError::io(&shown(), errno_io(e))),
                    }
                    nix::fcntl::openat(cur.as_fd(), name, flags, Mode::empty())
                }
                other => other,
            };
            let fd = match opened {
                Ok(fd) => fd,
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    let what = match stat_at(&cur, name) {
                        Ok(Some(st)) if is_kind(&st, SFlag::S_IFLNK) => {
                            return Err(ExtractError::Refused(format!(
                                "`{}` is a symlink; nothing is written through one",
                                shown()
                            )))
                        }
                        _ => "is not a directory",
                    };
                    return Err(ExtractError::io(
                        &shown(),
                        io::Error::new(io::ErrorKind::NotADirectory, what),
                    ));
                }
                Err(e) => return Err(ExtractError::io(&shown(), errno_io(e))),
            };
            let fd = Arc::new(fd);
            if self.dirs.len() >= DIR_CACHE {
                self.dirs.clear();
            }
            self.dirs.insert(parts[..=i].join("/"), fd.clone());
            cur = fd;
        }
        Ok(cur)
    }

    /// Whether the policy lets a member replace what is at `name` in `dir`; `Ok(false)`
    /// when nothing is there.
    fn may_replace(
        &self,
        dir: &OwnedFd,
        name: &str,
        shown: &str,
        meta: &Metadata,
        replacing_dir_ok: bool,
    ) -> Result<bool, ExtractError> {
        let Some(st) = stat_at(dir, name).map_err(|e| ExtractError::io(shown, errno_io(e)))? else {
            return Ok(false);
        };
        let what = describe(&st);
        match self.overwrite {
            Overwrite::Never => {
                return Err(ExtractError::Kept(format!("{what} (--overwrite never)")))
            }
            Overwrite::Older => {
                let theirs = st.st_mtime * 1_000_000_000 + st.st_mtime_nsec;
                if theirs >= meta.mtime_ns {
                    return Err(ExtractError::Kept(format!(
                        "{what}, not older than the member (--overwrite older)"
                    )));
                }
            }
            Overwrite::Always => {}
        }
        if is_kind(&st, SFlag::S_IFDIR) && !replacing_dir_ok {
            return Err(ExtractError::io(
                shown,
                io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "a directory is in the way; it is never replaced",
                ),
            ));
        }
        Ok(true)
    }

    fn temp_name(&mut self) -> String {
        self.temp_counter += 1;
        format!(
            ".tapedeck-restore-{}-{}",
            std::process::id(),
            self.temp_counter
        )
    }

    /// Starts writing a regular file at `path`.
    pub fn create_file(
        &mut self,
        path: &SafePath,
        meta: &Metadata,
    ) -> Result<OpenFile, ExtractError> {
        let shown = path.display();
        let dir = self.dir(path.parent(), true)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let create = |name: &str| {
            nix::fcntl::openat(dir.as_fd(), name, flags, Mode::from_bits_truncate(0o600))
                .map_err(|e| ExtractError::io(&shown, errno_io(e)))
        };
        // Most targets are new: create first, and look at what is there only if something is.
        let (fd, written_as, replaces) = match create(path.name()) {
            Ok(fd) => (fd, path.name().to_string(), false),
            Err(ExtractError::Io { source, .. })
                if source.raw_os_error() == Some(Errno::EEXIST as i32) =>
            {
                if self.may_replace(&dir, path.name(), &shown, meta, false)? {
                    let temp = self.temp_name();
                    (create(&temp)?, temp, true)
                } else {
                    // Gone again since: a plain create will do.
                    (create(path.name())?, path.name().to_string(), false)
                }
            }
            Err(e) => return Err(e),
        };
        Ok(OpenFile {
            file: File::from(fd),
            dir,
            path: path.clone(),
            written_as,
            replaces,
            meta: meta.clone(),
        })
    }

    /// Completes a file: owner, mode, extended attributes, mtime, then (when replacing)
    /// the rename over the old one. Returns warnings (metadata that could not be set).
    pub fn finish_file(&mut self, f: OpenFile) -> Result<Vec<String>, ExtractError> {
        let shown = f.path.display();
        let mut warnings = Vec::new();
        self.apply_fd(&f.file, &f.meta, &shown, &mut warnings)?;
        if f.replaces {
            nix::fcntl::renameat(
                f.dir.as_fd(),
                f.written_as.as_str(),
                f.dir.as_fd(),
                f.path.name(),
            )
            .map_err(|e| ExtractError::io(&shown, errno_io(e)))?;
        }
        Ok(warnings)
    }

    /// Gives up a file: what was written is removed (the old file, if any, stays).
    pub fn discard_file(&mut self, f: OpenFile) {
        drop(f.file);
        let _ = nix::unistd::unlinkat(
            f.dir.as_fd(),
            f.written_as.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }

    /// Owner, mode, xattrs and mtime on an open file or directory.
    fn apply_fd(
        &mut self,
        file: &File,
        meta: &Metadata,
        shown: &str,
        warnings: &mut Vec<String>,
    ) -> Result<(), ExtractError> {
        if self.same_owner {
            let (uid, gid) = self.owner(meta);
            if let Err(e) = nix::unistd::fchown(
                file.as_fd(),
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            ) {
                warnings.push(format!("{shown}: owner {uid}:{gid} not set: {e}"));
            }
        }
        nix::sys::stat::fchmod(file.as_fd(), Mode::from_bits_truncate(meta.mode & 0o7777))
            .map_err(|e| ExtractError::io(shown, errno_io(e)))?;
        for (name, value) in &meta.xattrs {
            if let Err(e) = xattr::FileExt::set_xattr(file, name, value) {
                warnings.push(format!("{shown}: extended attribute {name} not set: {e}"));
            }
        }
        nix::sys::stat::futimens(
            file.as_fd(),
            &TimeSpec::UTIME_OMIT,
            &timespec(meta.mtime_ns),
        )
        .map_err(|e| ExtractError::io(shown, errno_io(e)))?;
        Ok(())
    }

    /// The uid and gid to give: by name when the name exists here, else the numbers.
    fn owner(&mut self, meta: &Metadata) -> (u32, u32) {
        let uid = meta
            .user
            .as_ref()
            .and_then(|u| {
                *self.users.entry(u.clone()).or_insert_with(|| {
                    nix::unistd::User::from_name(u)
                        .ok()
                        .flatten()
                        .map(|u| u.uid.as_raw())
                })
            })
            .unwrap_or(meta.uid.min(u32::MAX as u64) as u32);
        let gid = meta
            .group
            .as_ref()
            .and_then(|g| {
                *self.groups.entry(g.clone()).or_insert_with(|| {
                    nix::unistd::Group::from_name(g)
                        .ok()
                        .flatten()
                        .map(|g| g.gid.as_raw())
                })
            })
            .unwrap_or(meta.gid.min(u32::MAX as u64) as u32);
        (uid, gid)
    }

    /// A directory: created now (metadata at the end).
    pub fn directory(&mut self, path: &SafePath, meta: &Metadata) -> Result<(), ExtractError> {
        let shown = path.display();
        let parent = self.dir(path.parent(), true)?;
        match stat_at(&parent, path.name()).map_err(|e| ExtractError::io(&shown, errno_io(e)))? {
            Some(st) if is_kind(&st, SFlag::S_IFDIR) => {
                // Merged into; its metadata is replaced only where the policy says so.
                let replace = match self.overwrite {
                    Overwrite::Never => false,
                    Overwrite::Older => {
                        st.st_mtime * 1_000_000_000 + st.st_mtime_nsec < meta.mtime_ns
                    }
                    Overwrite::Always => true,
                };
                if replace {
                    self.pending_dirs.push(PendingDir {
                        path: path.clone(),
                        meta: meta.clone(),
                    });
                }
                return Ok(());
            }
            Some(_) => {
                // Something else is there: replaced only where the policy allows.
                self.may_replace(&parent, path.name(), &shown, meta, false)?;
                nix::unistd::unlinkat(
                    parent.as_fd(),
                    path.name(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                )
                .map_err(|e| ExtractError::io(&shown, errno_io(e)))?;
            }
            None => {}
        }
        match nix::sys::stat::mkdirat(parent.as_fd(), path.name(), Mode::from_bits_truncate(0o700))
        {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(ExtractError::io(&shown, errno_io(e))),
        }
        // Walk into it now, so a symlink raced into its place is caught.
        self.dir(&path.parts, false)?;
        self.pending_dirs.push(PendingDir {
            path: path.clone(),
            meta: meta.clone(),
        });
        Ok(())
    }

    /// A symlink, as recorded (never followed by anything here).
    pub fn symlink(
        &mut self,
        path: &SafePath,
        target: &str,
        meta: &Metadata,
    ) -> Result<Vec<String>, ExtractError> {
        let shown = path.display();
        let dir = self.dir(path.parent(), true)?;
        let replaces = self.may_replace(&dir, path.name(), &shown, meta, false)?;
        let name = if replaces {
            self.temp_name()
        } else {
            path.name().to_string()
        };
        match nix::unistd::symlinkat(target, dir.as_fd(), name.as_str()) {
            Ok(()) => {}
            Err(Errno::EEXIST) if !replaces => {
                return Err(ExtractError::Kept("entry (created meanwhile)".into()))
            }
            Err(e) => return Err(ExtractError::io(&shown, errno_io(e))),
        }
        let mut warnings = Vec::new();
        if self.same_owner {
            let (uid, gid) = self.owner(meta);
            if let Err(e) = nix::unistd::fchownat(
                dir.as_fd(),
                name.as_str(),
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                warnings.push(format!("{shown}: owner not set: {e}"));
            }
        }
        if let Err(e) = nix::sys::stat::utimensat(
            dir.as_fd(),
            name.as_str(),
            &TimeSpec::UTIME_OMIT,
            &timespec(meta.mtime_ns),
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        ) {
            warnings.push(format!("{shown}: mtime not set: {e}"));
        }
        if !meta.xattrs.is_empty() {
            warnings.push(format!(
                "{shown}: extended attributes of a symlink are not restored"
            ));
        }
        if replaces {
            nix::fcntl::renameat(dir.as_fd(), name.as_str(), dir.as_fd(), path.name())
                .map_err(|e| ExtractError::io(&shown, errno_io(e)))?;
        }
        Ok(warnings)
    }

    /// A FIFO or device node.
    pub fn special(
        &mut self,
        path: &SafePath,
        kind: SFlag,
        device: (u32, u32),
        meta: &Metadata,
    ) -> Result<Vec<String>, ExtractError> {
        let shown = path.display();
        let dir = self.dir(path.parent(), true)?;
        let replaces = self.may_replace(&dir, path.name(), &shown, meta, false)?;
        let name = if replaces {
            self.temp_name()
        } else {
            path.name().to_string()
        };
        let perm = Mode::from_bits_truncate(0o600);
        let made = if kind == SFlag::S_IFIFO {
            nix::unistd::mkfifoat(dir.as_fd(), name.as_str(), perm)
        } else {
            let dev = nix::sys::stat::makedev(device.0 as u64, device.1 as u64);
            nix::sys::stat::mknodat(dir.as_fd(), name.as_str(), kind, perm, dev)
        };
        match made {
            Ok(()) => {}
            Err(Errno::EPERM) => {
                return Err(ExtractError::io(
                    &shown,
                    io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "creating a device node needs root",
                    ),
                ))
            }
            Err(e) => return Err(ExtractError::io(&shown, errno_io(e))),
        }
        // Open without blocking (a FIFO) and without following, to set the metadata.
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut warnings = Vec::new();
        match nix::fcntl::openat(dir.as_fd(), name.as_str(), flags, Mode::empty()) {
            Ok(fd) => self.apply_fd(&File::from(fd), meta, &shown, &mut warnings)?,
            Err(e) => warnings.push(format!("{shown}: metadata not set: {e}")),
        }
        if replaces {
            nix::fcntl::renameat(dir.as_fd(), name.as_str(), dir.as_fd(), path.name())
                .map_err(|e| ExtractError::io(&shown, errno_io(e)))?;
        }
        Ok(warnings)
    }

    /// A hard link to `target` (a member restored in this run), made at the end.
    pub fn hard_link(&mut self, path: &SafePath, target: &SafePath) {
        self.pending_links.push(PendingLink {
            path: path.clone(),
            target: target.clone(),
        });
    }

    fn link_now(&mut self, link: &PendingLink) -> Result<(), ExtractError> {
        let shown = link.path.display();
        let from = self.dir(link.target.parent(), false)?;
        let dir = self.dir(link.path.parent(), true)?;
        // A hard link has no metadata of its own: the policy compares with its target's.
        let meta = match stat_at(&from, link.target.name()) {
            Ok(Some(st)) => Metadata {
                mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
                ..Metadata::default()
            },
            _ => {
                return Err(ExtractError::io(
                    &shown,
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("its target {} was not restored", link.target.display()),
                    ),
                ))
            }
        };
        let replaces = self.may_replace(&dir, link.path.name(), &shown, &meta, false)?;
        let name = if replaces {
            self.temp_name()
        } else {
            link.path.name().to_string()
        };
        nix::unistd::linkat(
            from.as_fd(),
            link.target.name(),
            dir.as_fd(),
            name.as_str(),
            AtFlags::empty(),
        )
        .map_err(|e| ExtractError::io(&shown, errno_io(e)))?;
        if replaces {
            nix::fcntl::renameat(dir.as_fd(), name.as_str(), dir.as_fd(), link.path.name())
                .map_err(|e| ExtractError::io(&shown, errno_io(e)))?;
        }
        Ok(())
    }

    /// Makes the hard links and gives directories their metadata, deepest first.
    /// Returns each failure by path, and warnings.
    pub fn finish(&mut self) -> (Vec<(String, ExtractError)>, Vec<String>) {
        let mut failed = Vec::new();
        let mut warnings = Vec::new();
        for link in std::mem::take(&mut self.pending_links) {
            if let Err(e) = self.link_now(&link) {
                failed.push((link.path.display(), e));
            }
        }
        let mut dirs = std::mem::take(&mut self.pending_dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.path.parts.len()));
        for d in dirs {
            let shown = d.path.display();
            let applied = self.dir(&d.path.parts, false).and_then(|fd| {
                let file = File::from(fd.try_clone().map_err(|e| ExtractError::io(&shown, e))?);
                self.apply_fd(&file, &d.meta, &shown, &mut warnings)
            });
            if let Err(e) = applied {
                failed.push((shown, e));
            }
        }
        self.dirs.clear();
        (failed, warnings)
    }
}

fn stat_at(dir: &OwnedFd, name: &str) -> Result<Option<FileStat>, Errno> {
    match nix::sys::stat::fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_kind(st: &FileStat, kind: SFlag) -> bool {
    (st.st_mode & SFlag::S_IFMT.bits()) == kind.bits()
}

fn describe(st: &FileStat) -> &'static str {
    if is_kind(st, SFlag::S_IFDIR) {
        "directory"
    } else if is_kind(st, SFlag::S_IFLNK) {
        "symlink"
    } else if is_kind(st, SFlag::S_IFREG) {
        "file"
    } else {
        "entry"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn meta(mode: u32, mtime_s: i64) -> Metadata {
        Metadata {
            mode,
            mtime_ns: mtime_s * 1_000_000_000 + 5,
            ..Metadata::default()
        }
    }

    fn write(x: &mut Extractor, path: &str, data: &[u8], m: &Metadata) -> Result<(), ExtractError> {
        let mut f = x.create_file(&SafePath::new(path)?, m)?;
        f.write_all(data)?;
        x.finish_file(f).map(drop)
    }

    #[test]
    fn unsafe_paths_are_refused_by_form() {
        for bad in ["/etc/passwd", "../x", "a/../../x", "", ".", "a/\0b"] {
            assert!(
                matches!(SafePath::new(bad), Err(ExtractError::Refused(_))),
                "{bad:?}"
            );
        }
        assert_eq!(SafePath::new("a//./b/").unwrap().display(), "a/b");
        assert!(SafePath::from_catalogue("/a/b").is_ok());
        assert!(SafePath::from_catalogue("//etc/x").is_err());
        assert!(SafePath::from_catalogue("/../x").is_err());
    }

    #[test]
    fn files_get_their_metadata_and_never_go_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let to = dir.path().join("to");
        let mut x = Extractor::new(&to, Overwrite::Never).unwrap();
        write(&mut x, "a/b/c.txt", b"hello", &meta(0o640, 1_600_000_000)).unwrap();
        let m = fs::metadata(to.join("a/b/c.txt")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640);
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_600_000_000, 5));
        assert_eq!(fs::read(to.join("a/b/c.txt")).unwrap(), b"hello");

        x.symlink(
            &SafePath::new("evil").unwrap(),
            outside.path().to_str().unwrap(),
            &meta(0o777, 1),
        )
        .unwrap();
        let err = write(&mut x, "evil/owned", b"x", &meta(0o644, 1)).unwrap_err();
        assert!(matches!(err, ExtractError::Refused(_)), "{err}");
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(!outside.path().join("owned").exists());
        // A relative symlink climbing out is just as refused.
        x.symlink(&SafePath::new("a/up").unwrap(), "../../..", &meta(0o777, 1))
            .unwrap();
        let err = write(&mut x, "a/up/x", b"x", &meta(0o644, 1)).unwrap_err();
        assert!(matches!(err, ExtractError::Refused(_)), "{err}");
        // A symlink as the last component is not written through either.
        let err = write(&mut x, "evil", b"x", &meta(0o644, 1)).unwrap_err();
        assert!(matches!(err, ExtractError::Kept(_)), "{err}");
    }

    #[test]
    fn overwrite_policies() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().to_path_buf();
        fs::write(to.join("f"), b"old").unwrap();
        let mut never = Extractor::new(&to, Overwrite::Never).unwrap();
        let err = write(&mut never, "f", b"new", &meta(0o644, 2_000_000_000)).unwrap_err();
        assert!(matches!(err, ExtractError::Kept(_)), "{err}");
        assert_eq!(fs::read(to.join("f")).unwrap(), b"old");

        let mut older = Extractor::new(&to, Overwrite::Older).unwrap();
        let err = write(&mut older, "f", b"ancient", &meta(0o644, 1)).unwrap_err();
        assert!(matches!(err, ExtractError::Kept(_)), "{err}");
        write(&mut older, "f", b"newer", &meta(0o644, 4_000_000_000)).unwrap();
        assert_eq!(fs::read(to.join("f")).unwrap(), b"newer");

        let mut always = Extractor::new(&to, Overwrite::Always).unwrap();
        write(&mut always, "f", b"forced", &meta(0o600, 1)).unwrap();
        assert_eq!(fs::read(to.join("f")).unwrap(), b"forced");
        // A replacement that is given up leaves the old file.
        let mut f = always
            .create_file(&SafePath::new("f").unwrap(), &meta(0o644, 1))
            .unwrap();
        f.write_all(b"half").unwrap();
        always.discard_file(f);
        assert_eq!(fs::read(to.join("f")).unwrap(), b"forced");
        let leftovers: Vec<_> = fs::read_dir(&to).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
        // A directory is never replaced by a file.
        fs::create_dir(to.join("d")).unwrap();
        let err = write(&mut always, "d", b"x", &meta(0o644, 1)).unwrap_err();
        assert!(matches!(err, ExtractError::Io { .. }), "{err}");
    }

    #[test]
    fn directories_get_metadata_last_and_hard_links_are_made_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().to_path_buf();
        let mut x = Extractor::new(&to, Overwrite::Never).unwrap();
        x.directory(&SafePath::new("ro").unwrap(), &meta(0o555, 1_000))
            .unwrap();
        write(&mut x, "ro/f", b"data", &meta(0o644, 2_000)).unwrap();
        x.hard_link(
            &SafePath::new("ro/g").unwrap(),
            &SafePath::new("ro/f").unwrap(),
        );
        x.hard_link(
            &SafePath::new("h").unwrap(),
            &SafePath::new("missing").unwrap(),
        );
        let (failed, _) = x.finish();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, "h");
        let d = fs::metadata(to.join("ro")).unwrap();
        assert_eq!(d.permissions().mode() & 0o7777, 0o555);
        assert_eq!(d.mtime(), 1_000);
        assert_eq!(
            fs::metadata(to.join("ro/g")).unwrap().ino(),
            fs::metadata(to.join("ro/f")).unwrap().ino()
        );
        fs::set_permissions(to.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    }
}
