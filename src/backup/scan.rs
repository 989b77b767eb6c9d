//! Walks the sources into the ordered list of members a backup writes.
//!
//! The walk is depth-first with each directory's entries sorted by name (bytewise), a
//! directory's own entry before its contents, and never follows a symlink (a source that is
//! itself a symlink is backed up as the symlink, as tar does). Metadata comes from `lstat`
//! (through the directory's descriptor, `statx`/`fstatat` with `AT_SYMLINK_NOFOLLOW`).
//! Everything that cannot be backed up (sockets, non-UTF-8 names, unreadable directories,
//! entries that vanish during the walk) is listed in [`Scan::skipped`] with a reason; only a
//! source that cannot be stat'ed at all is an error, reported before anything is walked.

use super::entries::{EntryLog, CHUNK};
use super::incremental::ChangeFilter;
use std::collections::{HashMap, HashSet};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// What a member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink {
        target: PathBuf,
    },
    /// A further name of a regular file already in this backup (`target` is that member's
    /// tar name, without the leading `/`).
    HardLink {
        target: String,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// One member to write, with the metadata taken when it was scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The absolute source path.
    pub path: PathBuf,
    /// The tar member name: the absolute path without the leading `/` (directories end in `/`).
    pub name: String,
    pub kind: EntryKind,
    /// Bytes of data (regular files only; 0 otherwise).
    pub size: u64,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The owner's user name, if `uid` has one.
    pub user: Option<Arc<str>>,
    /// The group's name, if `gid` has one.
    pub group: Option<Arc<str>>,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Inode number (with `ctime_ns`, what tells an incremental backup that a file changed
    /// although its size and mtime did not).
    pub ino: u64,
    /// Status change time in nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// Extended attributes (name, value) that tar carries as `SCHILY.xattr.*`, sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// A path that could not be backed up, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// The result of a scan: the members in backup order and what was left out.
#[derive(Debug, Default)]
pub struct Scan {
    pub entries: Vec<Entry>,
    pub skipped: Vec<Skipped>,
    /// Sum of `size` over the entries.
    pub total_bytes: u64,
}

/// A scan that cannot start (the operator's input is wrong: exit 2, nothing written).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path}: {reason}")]
    BadSource { path: PathBuf, reason: String },
    #[error("cannot start the scan: {0}")]
    Thread(String),
}

/// Reason recorded for sockets.
const SOCKET_REASON: &str = "socket (tar cannot store sockets)";
/// Reason recorded for paths that are not UTF-8.
const NOT_UTF8_REASON: &str =
    "name is not valid UTF-8 (the catalogue needs UTF-8 names); skipped with its contents";

/// Scans `sources` (each made absolute).
///
/// Every source is checked (made absolute against the current directory, lexically
/// normalised, `lstat`ed) before anything is walked; the first one that fails is returned as
/// [`ScanError::BadSource`]. Sources that repeat one another, or lie inside a directory that
/// is also a source (and would be reached by walking it), are walked once.
pub fn scan(sources: &[PathBuf]) -> Result<Scan, ScanError> {
    let checked = check_sources(sources)?;
    let mut walker = Walker::default();
    for (path, meta) in checked {
        walker.walk(path, meta);
    }
    Ok(walker.out)
}

/// Checks the sources as [`scan`] does (a source that cannot be stat'ed is an error),
/// without walking them.
pub fn check(sources: &[PathBuf]) -> Result<(), ScanError> {
    check_sources(sources).map(drop)
}

/// Checks the sources as [`scan`] does, then walks them in a thread of their own that
/// publishes the entries into the returned log as it goes, so a backup can start on the
/// first files while the scan goes on. Closing the log stops the walk.
pub fn start(sources: &[PathBuf]) -> Result<Arc<EntryLog>, ScanError> {
    start_filtered(sources, None)
}

/// Like [`start`], but only the entries `filter` keeps go into the log (an incremental
/// backup's new and changed files, and every directory); a walk that completes hands the
/// filter what it did not see.
pub fn start_filtered(
    sources: &[PathBuf],
    filter: Option<ChangeFilter>,
) -> Result<Arc<EntryLog>, ScanError> {
    let checked = check_sources(sources)?;
    let log = EntryLog::new();
    let out = log.clone();
    std::thread::Builder::new()
        .name("scan".into())
        .spawn(move || {
            let roots: Vec<PathBuf> = checked.iter().map(|(p, _)| p.clone()).collect();
            let mut walker = Walker {
                log: Some(out.clone()),
                filter,
                ..Walker::default()
            };
            for (path, meta) in checked {
                if walker.stopped {
                    break;
                }
                walker.walk(path, meta);
            }
            walker.flush();
            // Before the log is finished: whoever sees the scan done finds the outcome.
            if !walker.stopped {
                if let Some(filter) = walker.filter.take() {
                    filter.finish(&roots);
                }
            }
            out.finish();
        })
        .map_err(|e| ScanError::Thread(e.to_string()))?;
    Ok(log)
}

/// Reads the extended attributes of `path` itself (a symlink's own, not its target's),
/// sorted by name. A filesystem without xattr support, or any error, yields an empty list;
/// names that are not UTF-8 are left out.
pub fn read_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    list_xattrs(path).unwrap_or_default()
}

/// Like [`read_xattrs`], but tells a failure to list apart (so the caller can remember
/// filesystems without support).
fn list_xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in xattr::list(path)? {
        let Some(text) = name.to_str() else { continue };
        // An attribute removed since it was listed is left out.
        if let Ok(Some(value)) = xattr::get(path, &name) {
            out.push((text.to_owned(), value));
        }
    }
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Whether an error means "this filesystem has no xattrs at all".
fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP))
}

/// `path` made absolute against `cwd` and lexically normalised (`.` dropped, `..` removes
/// the previous component, never above `/`); symlinks are not resolved.
fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let joined;
    let path = if path.is_absolute() {
        path
    } else {
        joined = cwd.join(path);
        &joined
    };
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Makes every source absolute and `lstat`s it; drops repeats and sources that walking an
/// earlier-kept or later directory source reaches anyway. Keeps the given order otherwise.
fn check_sources(sources: &[PathBuf]) -> Result<Vec<(PathBuf, Metadata)>, ScanError> {
    let mut cwd: Option<PathBuf> = None;
    let mut checked: Vec<(PathBuf, Metadata)> = Vec::with_capacity(sources.len());
    for source in sources {
        let bad = |reason: String| ScanError::BadSource {
            path: source.clone(),
            reason,
        };
        let abs = if source.is_absolute() {
            absolute(source, Path::new("/"))
        } else {
            if cwd.is_none() {
                let dir = std::env::current_dir()
                    .map_err(|e| bad(format!("cannot find the current directory: {e}")))?;
                cwd = Some(dir);
            }
            absolute(source, cwd.as_deref().unwrap_or(Path::new("/")))
        };
        if abs.to_str().is_none() {
            return Err(bad(
                "path is not valid UTF-8 (the catalogue needs UTF-8 names)".into(),
            ));
        }
        let meta = fs::symlink_metadata(&abs).map_err(|e| bad(e.to_string()))?;
        checked.push((abs, meta));
    }
    let mut keep = Vec::with_capacity(checked.len());
    for (i, (path, _)) in checked.iter().enumerate() {
        let repeated = checked[..i].iter().any(|(p, _)| p == path);
        let covered = checked.iter().any(|(dir, meta)| {
            meta.is_dir() && dir != path && path.starts_with(dir) && reached_from(dir, path)
        });
        keep.push(!repeated && !covered);
    }
    Ok(checked
        .into_iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(c))
        .collect())
}

/// Whether walking directory `dir` reaches `path` (a path below it): every component
/// between them must be a real directory, not a symlink.
fn reached_from(dir: &Path, path: &Path) -> bool {
    let Ok(rest) = path.strip_prefix(dir) else {
        return false;
    };
    let mut cur = dir.to_path_buf();
    let mut parts = rest.components().peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return true;
        }
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            _ => return false,
        }
    }
    true
}

/// The walk's state: output so far, name caches and the hard-link table.
#[derive(Default)]
struct Walker {
    out: Scan,
    /// Names shared by every entry of the same owner (one allocation per name).
    users: HashMap<u32, Option<Arc<str>>>,
    groups: HashMap<u32, Option<Arc<str>>>,
    /// First member name of each (dev, ino) of a regular file with more than one link.
    links: HashMap<(u64, u64), String>,
    /// Devices whose filesystem reported no xattr support: not asked again.
    no_xattrs: HashSet<u64>,
    /// Streaming: entries go to this log in chunks instead of into `out`.
    log: Option<Arc<EntryLog>>,
    /// An incremental backup: only new and changed entries are emitted.
    filter: Option<ChangeFilter>,
    pending: Vec<Entry>,
    /// The log was closed: the backup no longer wants entries.
    stopped: bool,
}

/// One child of a directory being walked, stat'ed when the directory was read.
type Child = (PathBuf, io::Result<Metadata>);

impl Walker {
    /// Walks one checked source depth-first.
    fn walk(&mut self, source: PathBuf, meta: Metadata) {
        let mut stack: Vec<std::vec::IntoIter<Child>> = Vec::new();
        if let Some(dir) = self.visit(source, &meta) {
            if let Some(children) = self.read_children(dir) {
                stack.push(children);
            }
        }
        while let Some(top) = stack.last_mut() {
            if self.stopped {
                return;
            }
            let Some((path, meta)) = top.next() else {
                stack.pop();
                continue;
            };
            match meta {
                Err(e) => self.skip(path, e.to_string()),
                Ok(meta) => {
                    if let Some(dir) = self.visit(path, &meta) {
                        if let Some(children) = self.read_children(dir) {
                            stack.push(children);
                        }
                    }
                }
            }
        }
    }

    /// A directory's children sorted by name, each `lstat`ed; `None` (and a skip
    /// record) if it cannot be read. An error part-way keeps what was read.
    fn read_children(&mut self, dir: PathBuf) -> Option<std::vec::IntoIter<Child>> {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                self.skip(dir, format!("cannot read directory: {e}"));
                return None;
            }
        };
        let mut children: Vec<Child> = Vec::new();
        for item in rd {
            match item {
                Ok(de) => {
                    let meta = de.metadata();
                    children.push((de.path(), meta));
                }
                Err(e) => {
                    self.skip(dir.clone(), format!("cannot read directory: {e}"));
                    break;
                }
            }
        }
        // All children share the parent's prefix, so bytewise order of the whole path is
        // bytewise order of the names.
        children
            .sort_unstable_by(|a, b| a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes()));
        Some(children.into_iter())
    }

    /// Records `path` (or skips it). Returns the path back if it is a directory to descend
    /// into.
    fn visit(&mut self, path: PathBuf, meta: &Metadata) -> Option<PathBuf> {
        let ft = meta.file_type();
        let is_dir = ft.is_dir();
        let Some(text) = path.to_str() else {
            self.skip(path, NOT_UTF8_REASON.into());
            return None;
        };
        let rel = text.trim_start_matches('/');
        if rel.is_empty() {
            // `/` itself: it has no member name; its contents are walked.
            return is_dir.then_some(path);
        }
        let mut name = String::with_capacity(rel.len() + usize::from(is_dir));
        name.push_str(rel);

        let mut size = 0;
        // A regular file with more names: its first name stored is the file, later ones
        // are links to it (decided after the filter, so an unchanged first name that is
        // left out does not become a link target).
        let mut link_group = None;
        let kind = if ft.is_file() {
            size = meta.len();
            if meta.nlink() > 1 {
                link_group = Some((meta.dev(), meta.ino()));
            }
            EntryKind::File
        } else if is_dir {
            name.push('/');
            EntryKind::Dir
        } else if ft.is_symlink() {
            match fs::read_link(&path) {
                Ok(target) if target.to_str().is_some() => EntryKind::Symlink { target },
                Ok(_) => {
                    self.skip(
                        path,
                        "symlink target is not valid UTF-8 (the catalogue needs UTF-8)".into(),
                    );
                    return None;
                }
                Err(e) => {
                    self.skip(path, format!("cannot read symlink: {e}"));
                    return None;
                }
            }
        } else if ft.is_char_device() || ft.is_block_device() {
            let rdev = meta.rdev();
            // Linux majors are 12 bits and minors 20 bits, so both fit in u32.
            let major = u32::try_from(nix::sys::stat::major(rdev)).unwrap_or(u32::MAX);
            let minor = u32::try_from(nix::sys::stat::minor(rdev)).unwrap_or(u32::MAX);
            if ft.is_char_device() {
                EntryKind::CharDevice { major, minor }
            } else {
                EntryKind::BlockDevice { major, minor }
            }
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else if ft.is_socket() {
            self.skip(path, SOCKET_REASON.into());
            return None;
        } else {
            self.skip(path, "unknown file type".into());
            return None;
        };

        let mut entry = Entry {
            name,
            kind,
            size,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            user: self.user(meta.uid()),
            group: self.group(meta.gid()),
            mtime_ns: mtime_ns(meta),
            ino: meta.ino(),
            ctime_ns: ctime_ns(meta),
            xattrs: Vec::new(),
            path,
        };
        let descend = is_dir.then(|| entry.path.clone());
        if let Some(filter) = &mut self.filter {
            if !filter.keep(&entry) {
                return descend;
            }
        }
        if let Some(group) = link_group {
            match self.links.get(&group) {
                Some(first) => {
                    entry.kind = EntryKind::HardLink {
                        target: first.clone(),
                    };
                    entry.size = 0;
                }
                None => {
                    self.links.insert(group, entry.name.clone());
                }
            }
        }
        entry.xattrs = self.xattrs(&entry.path, meta.dev());
        self.emit(entry);
        descend
    }

    /// Hands an entry on: into the log in whole chunks when streaming, else into `out`.
    fn emit(&mut self, entry: Entry) {
        match &self.log {
            Some(_) => {
                self.pending.push(entry);
                if self.pending.len() == CHUNK {
                    self.flush();
                }
            }
            None => {
                if entry.kind == EntryKind::File {
                    self.out.total_bytes += entry.size;
                }
                self.out.entries.push(entry);
            }
        }
    }

    /// Publishes the entries not yet in the log.
    fn flush(&mut self) {
        if let Some(log) = &self.log {
            if !self.pending.is_empty() {
                let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
                if !log.publish(chunk) {
                    self.stopped = true;
                }
            }
        }
    }

    /// `path`'s xattrs, remembering devices without support.
    fn xattrs(&mut self, path: &Path, dev: u64) -> Vec<(String, Vec<u8>)> {
        if self.no_xattrs.contains(&dev) {
            return Vec::new();
        }
        match list_xattrs(path) {
            Ok(list) => list,
            Err(e) => {
                if is_unsupported(&e) {
                    self.no_xattrs.insert(dev);
                }
                Vec::new()
            }
        }
    }

    /// The user name of `uid` (looked up once per uid).
    fn user(&mut self, uid: u32) -> Option<Arc<str>> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| Arc::from(u.name))
            })
            .clone()
    }

    /// The group name of `gid` (looked up once per gid).
    fn group(&mut self, gid: u32) -> Option<Arc<str>> {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| Arc::from(g.name))
            })
            .clone()
    }

    fn skip(&mut self, path: PathBuf, reason: String) {
        if let Some(filter) = &mut self.filter {
            filter.skipped(&path);
        }
        match &self.log {
            Some(log) => log.skip(Skipped { path, reason }),
            None => self.out.skipped.push(Skipped { path, reason }),
        }
    }
}

/// Modification time in nanoseconds since the epoch (saturating far outside ±292 years).
fn mtime_ns(meta: &Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// Status change time in nanoseconds since the epoch (saturating as [`mtime_ns`]).
fn ctime_ns(meta: &Metadata) -> i64 {
    meta.ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.ctime_nsec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The member names of a scan, in order.
    fn names(scan: &Scan) -> Vec<&str> {
        scan.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// `path`'s member name.
    fn tar_name(path: &Path) -> String {
        path.to_str().unwrap().trim_start_matches('/').to_owned()
    }

    fn find<'a>(scan: &'a Scan, path: &Path) -> &'a Entry {
        scan.entries
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("{} not scanned", path.display()))
    }

    #[test]
    fn walks_depth_first_in_bytewise_name_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("src");
        fs::create_dir_all(root.join("a/inner")).unwrap();
        fs::write(root.join("a/inner/deep"), b"1234").unwrap();
        fs::write(root.join("a/z"), b"").unwrap();
        fs::write(root.join("a-b"), b"xy").unwrap();
        fs::write(root.join("B"), b"q").unwrap();
        fs::create_dir(root.join("empty")).unwrap();

        let scan = scan(std::slice::from_ref(&root)).unwrap();
        let base = tar_name(&root);
        let expect: Vec<String> = [
            "/",
            "/B",
            "/a/",
            "/a/inner/",
            "/a/inner/deep",
            "/a/z",
            "/a-b",
            "/empty/",
        ]
        .iter()
        .map(|s| format!("{base}{s}"))
        .collect();
        assert_eq!(names(&scan), expect);
        assert!(scan.skipped.is_empty(), "{:?}", scan.skipped);
        assert_eq!(scan.total_bytes, 4 + 2 + 1);
        assert!(!scan.entries[0].name.starts_with('/'));
        assert_eq!(scan.entries[0].path, root);
        assert_eq!(find(&scan, &root.join("a")).kind, EntryKind::Dir);
        assert_eq!(find(&scan, &root.join("a")).size, 0);
        assert_eq!(find(&scan, &root.join("a/inner/deep")).size, 4);
    }

    #[test]
    fn takes_metadata_from_lstat() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, b"data").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o4751)).unwrap();
        let d = tmp.path().join("d");
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o1777)).unwrap();
        let scan = scan(&[f.clone(), d.clone()]).unwrap();
        let meta = fs::symlink_metadata(&f).unwrap();
        let e = find(&scan, &f);
        assert_eq!(e.mode, 0o4751);
        assert_eq!(find(&scan, &d).mode, 0o1777);
        assert_eq!((e.uid, e.gid), (meta.uid(), meta.gid()));
        assert_eq!(e.mtime_ns, meta.mtime() * 1_000_000_000 + meta.mtime_nsec());
        let me = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid()))
            .unwrap()
            .map(|u| u.name);
        assert_eq!(e.user.as_deref(), me.as_deref());
    }

    #[test]
    fn records_symlinks_without_following_them() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::write(real.join("file"), b"abc").unwrap();
        let dir = tmp.path().join("dir");
        fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink("../real", dir.join("link")).unwrap();
        std::os::unix::fs::symlink("/nowhere/at/all", dir.join("dangling")).unwrap();

        let scan_dir = scan(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(scan_dir.entries.len(), 3, "{:?}", names(&scan_dir));
        assert_eq!(
            find(&scan_dir, &dir.join("link")).kind,
            EntryKind::Symlink {
                target: PathBuf::from("../real")
            }
        );
        assert_eq!(
            find(&scan_dir, &dir.join("dangling")).kind,
            EntryKind::Symlink {
                target: PathBuf::from("/nowhere/at/all")
            }
        );
        assert_eq!(scan_dir.total_bytes, 0);

        // A source that is a symlink is backed up as the symlink, as tar does.
        let scan_link = scan(&[dir.join("link")]).unwrap();
        assert_eq!(names(&scan_link), vec![tar_name(&dir.join("link"))]);
        assert!(matches!(
            scan_link.entries[0].kind,
            EntryKind::Symlink { .. }
        ));
    }

    #[test]
    fn later_names_of_a_file_are_hard_links_to_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let first = tmp.path().join("a");
        fs::write(&first, b"12345").unwrap();
        fs::hard_link(&first, tmp.path().join("b")).unwrap();
        fs::create_dir(tmp.path().join("c")).unwrap();
        fs::hard_link(&first, tmp.path().join("c/d")).unwrap();
        let scan = scan(&[tmp.path().to_path_buf()]).unwrap();
        assert_eq!(find(&scan, &first).kind, EntryKind::File);
        assert_eq!(find(&scan, &first).size, 5);
        for other in ["b", "c/d"] {
            let e = find(&scan, &tmp.path().join(other));
            assert_eq!(
                e.kind,
                EntryKind::HardLink {
                    target: tar_name(&first)
                }
            );
            assert_eq!(e.size, 0);
        }
        assert_eq!(scan.total_bytes, 5);
    }

    #[test]
    fn fifos_and_devices_are_members_sockets_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
        let sock = tmp.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let scan = scan(&[tmp.path().to_path_buf(), PathBuf::from("/dev/null")]).unwrap();
        assert_eq!(find(&scan, &fifo).kind, EntryKind::Fifo);
        assert_eq!(find(&scan, &fifo).mode, 0o640);
        assert_eq!(
            find(&scan, Path::new("/dev/null")).kind,
            EntryKind::CharDevice { major: 1, minor: 3 }
        );
        assert!(scan.entries.iter().all(|e| e.path != sock));
        assert_eq!(
            scan.skipped,
            vec![Skipped {
                path: sock,
                reason: SOCKET_REASON.into()
            }]
        );
    }

    #[test]
    fn a_missing_source_fails_before_anything_is_walked() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing");
        let err = scan(&[tmp.path().to_path_buf(), missing.clone()]).unwrap_err();
        let ScanError::BadSource { path, reason } = err else {
            panic!("{err:?}")
        };
        assert_eq!(path, missing);
        assert!(reason.contains("No such file"), "{reason}");
    }

    #[test]
    fn sources_are_made_absolute_and_normalised_lexically() {
        let cwd = Path::new("/home/op");
        assert_eq!(absolute(Path::new("docs"), cwd), Path::new("/home/op/docs"));
        assert_eq!(
            absolute(Path::new("./a/../b/."), cwd),
            Path::new("/home/op/b")
        );
        assert_eq!(absolute(Path::new("../../../x"), cwd), Path::new("/x"));
        assert_eq!(
            absolute(Path::new("/etc//ssh/"), cwd),
            Path::new("/etc/ssh")
        );
        assert_eq!(absolute(Path::new("/"), cwd), Path::new("/"));
    }

    #[test]
    fn repeated_and_nested_sources_are_walked_once() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("top");
        fs::create_dir_all(top.join("sub/deeper")).unwrap();
        fs::write(top.join("sub/deeper/f"), b"x").unwrap();
        fs::write(top.join("g"), b"yy").unwrap();
        // Reached through a symlink: not inside `top` as far as the walk goes.
        let other = tmp.path().join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("h"), b"z").unwrap();
        std::os::unix::fs::symlink(&other, top.join("ln")).unwrap();

        let scan = scan(&[
            top.join("sub/deeper"),
            top.join("g"),
            top.clone(),
            top.join("./sub/../sub"),
            top.join("ln/h"),
            top.clone(),
        ])
        .unwrap();
        let mut sorted = names(&scan);
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), scan.entries.len(), "{:?}", names(&scan));
        // top/ln/h is stat'ed (as the path given) and kept: walking top does not reach it.
        assert_eq!(scan.entries.len(), 7, "{:?}", names(&scan));
        assert_eq!(scan.entries[0].path, top);
        assert_eq!(scan.total_bytes, 1 + 2 + 1);
        assert!(names(&scan).contains(&tar_name(&top.join("ln/h")).as_str()));
    }

    #[test]
    fn non_utf8_names_are_skipped_with_their_contents() {
        use std::ffi::OsStr;
        let tmp = tempfile::tempdir().unwrap();
        let bad_dir = tmp.path().join(OsStr::from_bytes(b"caf\xe9"));
        fs::create_dir(&bad_dir).unwrap();
        fs::write(bad_dir.join("inside"), b"x").unwrap();
        let bad_file = tmp.path().join(OsStr::from_bytes(b"f\xff"));
        fs::write(&bad_file, b"x").unwrap();
        fs::write(tmp.path().join("ok"), b"x").unwrap();
        let scan = scan(&[tmp.path().to_path_buf()]).unwrap();
        assert_eq!(scan.entries.len(), 2, "{:?}", names(&scan));
        let mut skipped: Vec<_> = scan.skipped.iter().map(|s| s.path.clone()).collect();
        skipped.sort();
        let mut want = vec![bad_dir, bad_file];
        want.sort();
        assert_eq!(skipped, want);
        assert!(scan.skipped[0].reason.contains("UTF-8"));
    }

    #[test]
    fn unreadable_and_vanished_directories_are_skipped_not_fatal() {
        let tmp = tempfile::tempdir().unwrap();
        let mut walker = Walker::default();
        assert!(walker.read_children(tmp.path().join("gone")).is_none());
        assert_eq!(walker.out.skipped.len(), 1);
        assert!(walker.out.skipped[0]
            .reason
            .contains("cannot read directory"));

        if nix::unistd::Uid::effective().is_root() {
            return; // root reads a mode-000 directory anyway
        }
        let locked = tmp.path().join("locked");
        fs::create_dir(&locked).unwrap();
        fs::write(locked.join("f"), b"x").unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        let scan = scan(&[tmp.path().to_path_buf()]).unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(scan.entries.iter().any(|e| e.path == locked));
        assert_eq!(scan.skipped.len(), 1);
        assert_eq!(scan.skipped[0].path, locked);
    }

    #[test]
    fn xattrs_round_trip_where_supported() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, b"x").unwrap();
        if xattr::set(&f, "user.tapedeck.b", b"second").is_err() {
            eprintln!("no user xattrs on {}: skipped", tmp.path().display());
            return;
        }
        xattr::set(&f, "user.tapedeck.a", b"\x00binary\xff").unwrap();
        let scan = scan(std::slice::from_ref(&f)).unwrap();
        let got: Vec<_> = scan.entries[0]
            .xattrs
            .iter()
            .filter(|(n, _)| n.starts_with("user.tapedeck."))
            .cloned()
            .collect();
        assert_eq!(
            got,
            vec![
                ("user.tapedeck.a".to_string(), b"\x00binary\xff".to_vec()),
                ("user.tapedeck.b".to_string(), b"second".to_vec()),
            ]
        );
        assert!(read_xattrs(&tmp.path().join("missing")).is_empty());
    }

    /// 100 000 files must scan in well under a second with a warm cache:
    /// `cargo test --release --lib backup::scan -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn scans_100k_files_quickly() {
        let tmp = tempfile::tempdir().unwrap();
        for d in 0..100 {
            let dir = tmp.path().join(format!("d{d:03}"));
            fs::create_dir(&dir).unwrap();
            for f in 0..1000 {
                fs::write(dir.join(format!("f{f:04}")), b"").unwrap();
            }
        }
        let _ = scan(&[tmp.path().to_path_buf()]).unwrap(); // warm the cache
        let start = std::time::Instant::now();
        let scan = scan(&[tmp.path().to_path_buf()]).unwrap();
        let took = start.elapsed();
        eprintln!("scanned {} entries in {took:?}", scan.entries.len());
        assert_eq!(scan.entries.len(), 100_101);
    }
}
