//! Import from pytp, the Python tape tool tapedeck replaces: its `config.json` (drives and
//! libraries, turned into a tapedeck configuration snippet) and its snapshot files (backup
//! history, turned into catalogue backups of origin `pytp`).
//!
//! pytp's formats, as its source writes them:
//!
//! - `config.json` (`tapes.json` in early versions): `tar_dir`, `snapshot_dir`, `tape_drives`
//!   [{`name`, `device_path`, `block_size`}] and `tape_libraries` [{`name`, `device_path` (the
//!   changer), `slots`, `drives` (drive names in the changer's element order)}].
//! - `{job_}{dirname}_backup.json` in `snapshot_dir`: a JSON array (one line, `json.dump`), one
//!   entry per run since the last full backup (a full backup starts the file afresh):
//!   `type` (`full` or `incremental`; the first format wrote full entries without it), `label`
//!   (the tape's label or barcode, null when unknown), `timestamp` (Python `isoformat()`: local
//!   time, no zone), `strategy`, `block_size`, `tape_position` (the `st` file number read before
//!   writing: -1 when the drive did not know it, a message when the drive was not ready; missing
//!   in old files) and `files` {absolute path: {`type`: `file`, `mtime` (float seconds), `size`}
//!   or {`type`: `symlink`, `target`, `valid`}} (the first format left out `type` for files).
//!   Since late 2025 full entries have an empty `files`.
//!
//! Nothing is guessed silently: every entry is either imported or reported, and whatever an
//! imported backup lacks (file list, tape position, label, time) is reported too. Importing is
//! idempotent: a backup's uuid is derived from the snapshot file's name, the entry's index and
//! its timestamp, and backups already in the catalogue are skipped.

use crate::catalog::{
    BackupStatus, Catalog, CatalogError, FileKind, FileRecord, NewBackup, SegmentRecord,
    VolumeStatus, ORIGIN_IMPORT,
};
use crate::config::{allowed_block_size, block_size_rule, Config, ConfigFile};
use crate::tape::drive_model::DriveModel;
use crate::units::format_size;
use jiff::tz::TimeZone;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `origin` of the backups this module creates.
pub const ORIGIN: &str = "pytp";
/// The volume backups go to when pytp recorded no tape label.
pub const UNKNOWN_VOLUME: &str = "pytp-unknown";
/// How pytp names its snapshot files: `{job_}{dirname}_backup.json`.
pub const SNAPSHOT_SUFFIX: &str = "_backup.json";
/// The job of a snapshot file called just `_backup.json` (no job, a directory given with a
/// trailing slash).
pub const UNNAMED_JOB: &str = "pytp-unnamed";

#[derive(Debug, thiserror::Error)]
pub enum PytpError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: line {line}, column {column}: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Shape { path: PathBuf, message: String },
    #[error("{} already exists; refusing to overwrite it (choose another file)", path.display())]
    Exists { path: PathBuf },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{name}` is not a time zone tapedeck knows: {message}")]
    TimeZone { name: String, message: String },
    #[error(
        "nothing to import: give pytp's config.json (--pytp-config), its snapshot directory (--snapshots), or both"
    )]
    NothingToDo,
    #[error(
        "--write-config writes the configuration made from pytp's config.json: give that file too"
    )]
    WriteWithoutConfig,
    #[error(
        "the configuration made from pytp's does not parse as tapedeck configuration (a bug): {0}"
    )]
    Snippet(String),
    #[error(
        "{} is a tapedeck configuration (TOML), not pytp's config.json: tapedeck's own \
         configuration comes from TAPEDECK_CONFIG when importing from pytp",
        path.display()
    )]
    TapedeckConfig { path: PathBuf },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl PytpError {
    /// Errors the operator caused (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        match self {
            PytpError::Json { .. }
            | PytpError::Shape { .. }
            | PytpError::Exists { .. }
            | PytpError::TimeZone { .. }
            | PytpError::NothingToDo
            | PytpError::WriteWithoutConfig
            | PytpError::TapedeckConfig { .. } => true,
            PytpError::Read { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            PytpError::Catalog(e) => e.is_bad_input(),
            PytpError::Write { .. } | PytpError::Snippet(_) => false,
        }
    }
}

pub type Result<T, E = PytpError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/// How much of something made it into tapedeck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Lost: an entry, a file record, a drive or a whole file could not be imported.
    NotImported,
    /// Imported without something pytp did not record (file list, tape position, label...).
    Incomplete,
    /// Worth knowing; nothing is missing.
    Note,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::NotImported => "not imported",
            Severity::Incomplete => "incomplete",
            Severity::Note => "note",
        }
    }
}

/// One thing the operator should know: where it is (file, line, entry) and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub severity: Severity,
    /// The pytp file it concerns (config.json or a snapshot file), by path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Index of the entry in the snapshot file (0 = first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<usize>,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut place = Vec::new();
        if let Some(file) = &self.file {
            place.push(file.clone());
        }
        if let Some(line) = self.line {
            place.push(match self.column {
                Some(c) => format!("line {line}, column {c}"),
                None => format!("line {line}"),
            });
        }
        if let Some(e) = self.entry {
            place.push(format!("entry {e}"));
        }
        if place.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", place.join(": "), self.message)
        }
    }
}

/// What happened to a snapshot entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Imported,
    /// Dry run: would be imported.
    WouldImport,
    /// The catalogue has it from an earlier run.
    AlreadyImported,
    NotImported,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Imported => "imported",
            Outcome::WouldImport => "would import",
            Outcome::AlreadyImported => "already imported",
            Outcome::NotImported => "not imported",
        }
    }
}

/// One pytp run of one directory, as imported (or not).
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub file: String,
    pub entry: usize,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    pub job: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// The timestamp as pytp wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The tape label pytp recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The catalogue volume the backup is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// The tape file (st file number), when pytp knew it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tape_file: Option<i64>,
    /// File records imported (or that would be).
    pub files: u64,
    pub bytes: i64,
}

/// A snapshot file and what came of it.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub name: String,
    pub job: String,
    /// The directory pytp backed up, when the file list and the file name agree on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_dir: Option<String>,
    /// The `--job` pytp was given, when the file name shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pytp_job: Option<String>,
    /// Entries in the file: read, plus those lost to damage (an estimate).
    pub entries: usize,
    pub imported: usize,
    pub already_imported: usize,
    pub not_imported: usize,
    /// The file is damaged (truncated, syntax error): where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged_at: Option<String>,
}

/// A catalogue volume the history refers to.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeReport {
    pub label: String,
    /// The label as pytp wrote it, when it differs (or is missing: placeholder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pytp_label: Option<String>,
    /// `created`, `existing` or `would-create`.
    pub state: String,
    pub placeholder: bool,
    pub backups: usize,
}

/// What `config.json` turned into.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigReport {
    pub path: String,
    /// `[[drive]]` names in the snippet.
    pub drives: Vec<String>,
    /// `[[library]]` names in the snippet.
    pub libraries: Vec<String>,
    /// pytp's `snapshot_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_dir: Option<String>,
    /// TOML for tapedeck's configuration (parses with `Config::parse`).
    pub snippet: String,
    /// Where the snippet was written (`--write-config`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_to: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub snapshot_files: usize,
    pub entries: usize,
    pub imported: usize,
    pub already_imported: usize,
    pub not_imported: usize,
    pub file_records: u64,
    pub incomplete: usize,
}

/// Everything `migrate-pytp` did or would do.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub catalog: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<String>,
    pub files: Vec<FileReport>,
    pub backups: Vec<BackupReport>,
    pub volumes: Vec<VolumeReport>,
    pub issues: Vec<Issue>,
    pub summary: Summary,
}

impl Report {
    /// Whether some pytp history or configuration could not be imported at all.
    pub fn lost_anything(&self) -> bool {
        self.issues
            .iter()
            .any(|i| i.severity == Severity::NotImported)
    }
}

fn issue(severity: Severity, file: Option<&str>, entry: Option<usize>, message: String) -> Issue {
    Issue {
        severity,
        file: file.map(str::to_string),
        line: None,
        column: None,
        entry,
        message,
    }
}

// ---------------------------------------------------------------------------------------------
// config.json
// ---------------------------------------------------------------------------------------------

/// pytp's configuration, converted.
#[derive(Debug, Clone)]
pub struct ConvertedConfig {
    pub report: ConfigReport,
    pub issues: Vec<Issue>,
}

fn json_error(path: &Path, e: &serde_json::Error) -> PytpError {
    PytpError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: describe_json_error(e),
    }
}

fn describe_json_error(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; the report says where itself.
    let text = e.to_string();
    let text = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    match e.classify() {
        serde_json::error::Category::Eof => format!("{text} (the file ends early: truncated?)"),
        _ => text,
    }
}

/// A name tapedeck accepts for a drive or library: letters, digits, `-`, `_`.
fn config_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The entries of `top[key]` that are objects with a non-empty `name`, with that name;
/// a value that is not a list, an entry that is not an object or has no name is reported
/// (as is a missing list, when `when_missing` says how).
fn named_entries<'a>(
    top: &'a serde_json::Map<String, Value>,
    key: &str,
    what: &str,
    when_missing: Option<&str>,
    note: &mut impl FnMut(Severity, String),
) -> Vec<(&'a str, &'a serde_json::Map<String, Value>)> {
    let list = match top.get(key) {
        Some(Value::Array(list)) => list.as_slice(),
        Some(other) => {
            note(
                Severity::NotImported,
                format!(
                    "{key} is {}, not a list: no {what} imported",
                    json_kind(other)
                ),
            );
            &[]
        }
        None => {
            if let Some(message) = when_missing {
                note(Severity::Note, message.to_string());
            }
            &[]
        }
    };
    let mut entries = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let Value::Object(entry) = entry else {
            note(
                Severity::NotImported,
                format!(
                    "{key}[{i}] is {}, not a {what}: not imported",
                    json_kind(entry)
                ),
            );
            continue;
        };
        match entry
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(name) => entries.push((name, entry)),
            None => note(
                Severity::NotImported,
                format!("{key}[{i}] has no name: not imported"),
            ),
        }
    }
    entries
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// An integer from a JSON number or numeric string.
fn as_integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Converts pytp's `config.json` (text) into a tapedeck configuration snippet. `existing` is
/// tapedeck's current configuration, to point out names it already uses.
pub fn convert_config(path: &Path, text: &[u8], existing: &ConfigFile) -> Result<ConvertedConfig> {
    let value: Value = serde_json::from_slice(text).map_err(|e| json_error(path, &e))?;
    let Value::Object(top) = value else {
        return Err(PytpError::Shape {
            path: path.to_path_buf(),
            message: format!(
                "expected a JSON object with tape_drives and tape_libraries, found {}",
                json_kind(&value)
            ),
        });
    };
    let file = path.display().to_string();
    let mut issues = Vec::new();
    let mut note =
        |severity, message: String| issues.push(issue(severity, Some(&file), None, message));

    let mut snippet = format!(
        "# tapedeck configuration for pytp's drives and libraries, made by `tapedeck \
         migrate-pytp` from\n# {}: add it to your tapedeck configuration.\n",
        file.replace(['\n', '\r'], " ")
    );
    let mut drives: Vec<String> = Vec::new();
    // pytp name -> tapedeck name
    let mut renamed: HashMap<String, String> = HashMap::new();
    let mut libraries = Vec::new();
    let mut snapshot_dir = None;

    for (key, value) in &top {
        match key.as_str() {
            "tape_drives" | "tape_libraries" => {}
            "snapshot_dir" => {
                snapshot_dir = value.as_str().map(str::to_string);
                note(
                    Severity::Note,
                    format!(
                        "snapshot_dir {}: where pytp kept its history (import it with --snapshots); \
                         tapedeck keeps history in its catalogue",
                        value
                    ),
                );
            }
            "tar_dir" | "temp_dir" => note(
                Severity::Note,
                format!(
                    "{key} {value}: not imported; tapedeck streams to tape without temporary tar files"
                ),
            ),
            _ => note(
                Severity::Note,
                format!("`{key}` ({value}): not imported; tapedeck has no such setting"),
            ),
        }
    }

    let drive_list = named_entries(
        &top,
        "tape_drives",
        "drive",
        Some("no tape_drives: no drive to import"),
        &mut note,
    );
    for (pytp_name, d) in drive_list {
        let Some(device) = d.get("device_path").and_then(Value::as_str) else {
            note(
                Severity::NotImported,
                format!("drive {pytp_name} has no device_path: not imported"),
            );
            continue;
        };
        if !Path::new(device).is_absolute() {
            note(
                Severity::NotImported,
                format!("drive {pytp_name}: device_path `{device}` is not an absolute path: not imported"),
            );
            continue;
        }
        let name = config_name(pytp_name);
        if drives.contains(&name) {
            note(
                Severity::NotImported,
                format!("drive {pytp_name} appears twice: the second one is not imported"),
            );
            continue;
        }
        if name != pytp_name {
            note(
                Severity::Incomplete,
                format!("drive `{pytp_name}` is called `{name}` (tapedeck names use letters, digits, - and _)"),
            );
        }
        if let Some(d) = existing.drives.iter().find(|x| x.name == name) {
            note(
                Severity::Note,
                format!(
                    "drive {name} is already in your tapedeck configuration (device {}): \
                     keep one of the two",
                    d.device.display()
                ),
            );
        }
        let mut block = String::new();
        match d.get("block_size") {
            None | Some(Value::Null) => {}
            Some(v) => match as_integer(v).filter(|b| *b > 0).map(|b| b as u64) {
                Some(b) if allowed_block_size(b) => {
                    block = format!(
                        "block_size = {}\n",
                        toml_str(&format_size(b).replace(' ', ""))
                    );
                }
                Some(b) => note(
                    Severity::Incomplete,
                    format!(
                        "drive {name}: block size {b} bytes is outside what tapedeck writes \
                         ({}): left to tapedeck's default; tapes pytp wrote with it read back \
                         with `tar -b {}`",
                        block_size_rule(),
                        b / 512
                    ),
                ),
                None => note(
                    Severity::Incomplete,
                    format!(
                        "drive {name}: block_size {v} is not a number: left to tapedeck's default"
                    ),
                ),
            },
        }
        for key in d.keys() {
            if !matches!(key.as_str(), "name" | "device_path" | "block_size") {
                note(
                    Severity::Note,
                    format!("drive {name}: `{key}` not imported; tapedeck has no such setting"),
                );
            }
        }
        let model_hint = {
            let digits: String = pytp_name
                .to_ascii_uppercase()
                .split("LTO")
                .nth(1)
                .unwrap_or("")
                .trim_start_matches(['-', '_', ' '])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let model = format!("LTO-{digits}");
            if !digits.is_empty() && DriveModel::builtin(&model).is_some() {
                format!(
                    "# model = \"{model}\"  # pytp does not record the model; the name suggests it\n"
                )
            } else {
                "# model = \"LTO-9\"  # pytp does not record the model: set it for speed matching\n"
                    .to_string()
            }
        };
        snippet.push_str(&format!(
            "\n[[drive]]\nname = {}\ndevice = {}\n{block}{model_hint}\
             # sg_device = \"/dev/sgN\"  # for log pages and TapeAlert: see `lsscsi -g`\n",
            toml_str(&name),
            toml_str(device)
        ));
        renamed.insert(pytp_name.to_string(), name.clone());
        drives.push(name);
    }

    let library_list = named_entries(&top, "tape_libraries", "library", None, &mut note);
    for (pytp_name, l) in library_list {
        let name = config_name(pytp_name);
        let Some(changer) = l
            .get("device_path")
            .and_then(Value::as_str)
            .filter(|p| Path::new(p).is_absolute())
        else {
            note(
                Severity::NotImported,
                format!(
                    "library {pytp_name} has no absolute device_path (its changer): not imported"
                ),
            );
            continue;
        };
        if libraries.contains(&name) {
            note(
                Severity::NotImported,
                format!("library {pytp_name} appears twice: the second one is not imported"),
            );
            continue;
        }
        if name != pytp_name {
            note(
                Severity::Incomplete,
                format!("library `{pytp_name}` is called `{name}`"),
            );
        }
        let mut members = Vec::new();
        match l.get("drives") {
            Some(Value::Array(names)) => {
                for n in names {
                    match n.as_str().and_then(|n| renamed.get(n)) {
                        Some(d) => members.push(d.clone()),
                        None => note(
                            Severity::NotImported,
                            format!(
                                "library {name}: drive {} is not an imported drive: left out of \
                                 its drives (the order of the others is kept, but element \
                                 numbers after it shift: check it)",
                                value_text(n)
                            ),
                        ),
                    }
                }
            }
            other => note(
                Severity::Incomplete,
                format!(
                    "library {name}: drives is {}: imported without drives",
                    other.map_or("missing", json_kind)
                ),
            ),
        }
        for (key, value) in l {
            match key.as_str() {
                "name" | "device_path" | "drives" => {}
                "slots" => note(
                    Severity::Note,
                    format!(
                        "library {name}: slots {value} not imported; tapedeck asks the changer"
                    ),
                ),
                _ => note(
                    Severity::Note,
                    format!("library {name}: `{key}` not imported; tapedeck has no such setting"),
                ),
            }
        }
        if existing.libraries.iter().any(|x| x.name == name) {
            note(
                Severity::Note,
                format!(
                    "library {name} is already in your tapedeck configuration: keep one of the two"
                ),
            );
        }
        let drive_list = members
            .iter()
            .map(|m| toml_str(m))
            .collect::<Vec<_>>()
            .join(", ");
        snippet.push_str(&format!(
            "\n[[library]]\nname = {}\n# pytp drove the changer through {changer} with mtx; tapedeck \
             wants its SCSI generic device (`lsscsi -g`)\nchanger = {}\n# in the changer's \
             drive element order, as pytp listed them\ndrives = [{drive_list}]\n",
            toml_str(&name),
            toml_str(changer)
        ));
        libraries.push(name);
    }

    Config::parse(Path::new("migrate-pytp snippet"), &snippet)
        .map_err(|e| PytpError::Snippet(e.to_string()))?;
    Ok(ConvertedConfig {
        report: ConfigReport {
            path: file,
            drives,
            libraries,
            snapshot_dir,
            snippet,
            written_to: None,
        },
        issues,
    })
}

/// Writes `text` to a new file `path`; an existing file is never replaced.
pub fn write_new_file(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                PytpError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                PytpError::Write {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|source| PytpError::Write {
            path: path.to_path_buf(),
            source,
        })
}

// ---------------------------------------------------------------------------------------------
// Snapshot files: lenient parsing
// ---------------------------------------------------------------------------------------------

/// An element of a snapshot file's array.
#[derive(Debug, Clone, PartialEq)]
pub enum Element {
    Entry(Box<RawEntry>),
    /// Not an object: what it was.
    Other(&'static str),
}

/// A snapshot entry with every field as pytp may have written it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawEntry {
    pub kind: Option<Value>,
    pub label: Option<Value>,
    pub timestamp: Option<Value>,
    pub strategy: Option<Value>,
    pub block_size: Option<Value>,
    pub tape_position: Option<Value>,
    pub files: Option<Files>,
    pub unknown_keys: Vec<String>,
}

/// An entry's `files`.
#[derive(Debug, Clone, PartialEq)]
pub enum Files {
    /// Path and attributes, in file order.
    Map(Vec<(String, Attrs)>),
    /// Not an object: what it was.
    Other(&'static str),
}

/// A file record's attributes as pytp wrote them (`valid` and unknown keys are dropped).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawAttrs {
    pub kind: Option<Value>,
    pub size: Option<Value>,
    pub mtime: Option<Value>,
    pub target: Option<Value>,
}

/// The value of a path in `files`.
#[derive(Debug, Clone, PartialEq)]
pub enum Attrs {
    Object(RawAttrs),
    /// Not an object: what it was.
    Other(&'static str),
}

impl Attrs {
    /// A stable text of what pytp recorded, for [`backup_uuid`].
    fn digest_text(&self) -> String {
        match self {
            Attrs::Object(a) => [&a.kind, &a.size, &a.mtime, &a.target]
                .iter()
                .map(|v| v.as_ref().map_or_else(|| "-".to_string(), Value::to_string))
                .collect::<Vec<_>>()
                .join("\u{1f}"),
            Attrs::Other(what) => (*what).to_string(),
        }
    }
}

macro_rules! other_values {
    ($ty:ident) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$ty, E> {
            Ok($ty::Other("a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$ty, E> {
            Ok($ty::Other("a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$ty, E> {
            Ok($ty::Other("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$ty, E> {
            Ok($ty::Other("a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<$ty, E> {
            Ok($ty::Other("a string"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<$ty, E> {
            Ok($ty::Other("null"))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$ty, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($ty::Other("a list"))
        }
    };
}

struct AttrsVisitor;

impl<'de> Visitor<'de> for AttrsVisitor {
    type Value = Attrs;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("file attributes")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attrs, A::Error> {
        let mut a = RawAttrs::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => a.kind = Some(map.next_value()?),
                "size" => a.size = Some(map.next_value()?),
                "mtime" => a.mtime = Some(map.next_value()?),
                "target" => a.target = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Attrs::Object(a))
    }
    other_values!(Attrs);
}

impl<'de> Deserialize<'de> for Attrs {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Attrs, D::Error> {
        d.deserialize_any(AttrsVisitor)
    }
}

struct FilesVisitor;

impl<'de> Visitor<'de> for FilesVisitor {
    type Value = Files;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of paths")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Files, A::Error> {
        let mut out = Vec::new();
        while let Some((path, attrs)) = map.next_entry::<String, Attrs>()? {
            out.push((path, attrs));
        }
        Ok(Files::Map(out))
    }
    other_values!(Files);
}

impl<'de> Deserialize<'de> for Files {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Files, D::Error> {
        d.deserialize_any(FilesVisitor)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a backup entry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
        let mut e = RawEntry::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => e.kind = Some(map.next_value()?),
                "label" => e.label = Some(map.next_value()?),
                "timestamp" => e.timestamp = Some(map.next_value()?),
                "strategy" => e.strategy = Some(map.next_value()?),
                "block_size" => e.block_size = Some(map.next_value()?),
                "tape_position" => e.tape_position = Some(map.next_value()?),
                "files" => e.files = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    e.unknown_keys.push(key);
                }
            }
        }
        Ok(Element::Entry(Box::new(e)))
    }
    other_values!(Element);
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Element, D::Error> {
        d.deserialize_any(ElementVisitor)
    }
}

/// Collects the array's elements into a vector that keeps what was read before an error.
struct ElementsSeed<'a>(&'a mut Vec<Element>);

impl<'de> DeserializeSeed<'de> for ElementsSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ElementsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of backup entries")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(e) = seq.next_element::<Element>()? {
            self.0.push(e);
        }
        Ok(())
    }
}

/// Where a snapshot file stops making sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// Whether the array itself was complete (only something after it is wrong).
    pub after_array: bool,
    /// Entries that start after the damage (counted by their `"files":` key), not imported.
    pub entries_after: usize,
}

/// A snapshot file, read as far as it goes.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub elements: Vec<Element>,
    pub damage: Option<Damage>,
}

/// Byte offset of a 1-based line and column.
fn offset_of(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    if line > 1 {
        let mut seen = 1;
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\n' {
                seen += 1;
                if seen == line {
                    start = i + 1;
                    break;
                }
            }
        }
    }
    (start + column).min(bytes.len())
}

/// How many `"files"` keys (one per entry) appear in `bytes`.
fn count_entries(bytes: &[u8]) -> usize {
    let key = b"\"files\"";
    let mut n = 0;
    let mut i = 0;
    while i + key.len() <= bytes.len() {
        if &bytes[i..i + key.len()] == key {
            let rest = &bytes[i + key.len()..];
            let next = rest.iter().find(|b| !b.is_ascii_whitespace());
            if next == Some(&b':') {
                n += 1;
            }
            i += key.len();
        } else {
            i += 1;
        }
    }
    n
}

/// Reads a snapshot file's entries leniently: odd values are kept for the planner to judge,
/// and a syntax error or a truncation keeps the entries before it.
pub fn parse_snapshot(bytes: &[u8]) -> Snapshot {
    let mut elements = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut array_done = false;
    let result = ElementsSeed(&mut elements)
        .deserialize(&mut de)
        .and_then(|()| {
            array_done = true;
            de.end()
        });
    let damage = result.err().map(|e| {
        let at = offset_of(bytes, e.line(), e.column());
        Damage {
            line: e.line(),
            column: e.column(),
            message: describe_json_error(&e),
            after_array: array_done,
            entries_after: if array_done {
                0
            } else {
                count_entries(&bytes[at..])
            },
        }
    });
    Snapshot { elements, damage }
}

// ---------------------------------------------------------------------------------------------
// Planning: what each entry becomes
// ---------------------------------------------------------------------------------------------

/// One file record of a planned backup (its segment is filled in at import).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFile {
    pub path: String,
    pub kind: FileKind,
    pub size: i64,
    pub mtime_ns: Option<i64>,
    pub link: Option<String>,
}

/// A snapshot entry ready to become a catalogue backup.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedBackup {
    pub uuid: String,
    pub index: usize,
    pub kind: &'static str,
    pub label: Option<String>,
    /// The catalogue volume: the label made valid, or [`UNKNOWN_VOLUME`].
    pub volume: String,
    pub tape_file: Option<i64>,
    pub started_at: i64,
    pub timestamp: Option<String>,
    pub strategy: Option<String>,
    pub block_size: Option<i64>,
    pub files: Vec<PlannedFile>,
}

/// A snapshot file, planned.
#[derive(Debug, Clone)]
pub struct PlannedFileSet {
    pub path: PathBuf,
    pub name: String,
    pub job: String,
    pub pytp_job: Option<String>,
    pub source_dir: Option<String>,
    pub entries: usize,
    /// Entries that can be imported, in file order.
    pub backups: Vec<PlannedBackup>,
    /// Entries that cannot, with why.
    pub rejected: Vec<(usize, String)>,
    pub damage: Option<Damage>,
    /// Entries lost to the damage (at least the damaged one; an estimate).
    pub lost: usize,
    /// Some timestamp had no zone and was read in the given one.
    pub assumed_zone: bool,
    pub issues: Vec<Issue>,
}

/// FNV-1a, 128 bits: a stable hash (the same on every platform and Rust release).
fn fnv128(parts: &[&[u8]]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    for part in parts {
        for b in part.iter().chain(std::iter::once(&0xffu8)) {
            h ^= u128::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h
}

/// The backup uuid of entry `index` of snapshot file `name`: a version 8 (custom) uuid from a
/// hash of the file name, the index and the entry's timestamp, or, when it has none, its file
/// list. The same entry always gets the same uuid; an entry at the same index after pytp
/// started the file afresh gets another.
pub fn backup_uuid(name: &str, index: usize, timestamp: Option<&str>, files: &[u8]) -> String {
    let index = index.to_string();
    let h = match timestamp {
        Some(ts) => fnv128(&[
            b"pytp",
            name.as_bytes(),
            index.as_bytes(),
            b"ts",
            ts.as_bytes(),
        ]),
        None => fnv128(&[b"pytp", name.as_bytes(), index.as_bytes(), b"files", files]),
    };
    uuid::Builder::from_custom_bytes(h.to_be_bytes())
        .into_uuid()
        .to_string()
}

/// Whether tapedeck accepts `label` for a volume: up to 32 letters, digits, `-`, `_`, `.`.
pub fn valid_volume_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 32
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The catalogue volume for a pytp label (changed to fit tapedeck's rules if need be).
pub fn volume_label(pytp: &str) -> String {
    if valid_volume_label(pytp) {
        return pytp.to_string();
    }
    let mut s: String = pytp
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.len() > 32 {
        // Keep it unique: a short hash of the whole label at the end.
        let h = fnv128(&[pytp.as_bytes()]);
        s.truncate(23);
        s = format!("{s}-{:08x}", (h >> 96) as u32);
    }
    if s.chars().all(|c| c == '-') {
        format!("pytp-{:08x}", (fnv128(&[pytp.as_bytes()]) >> 96) as u32)
    } else {
        s
    }
}

/// A timestamp pytp wrote: `isoformat()` without a zone (read in `tz`), with a zone, or Unix
/// seconds. Returns Unix seconds and whether a zone had to be assumed.
pub fn parse_timestamp(v: &Value, tz: &TimeZone) -> Option<(i64, bool)> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|f| (f as i64, false)),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(ts) = s.parse::<jiff::Timestamp>() {
                return Some((ts.as_second(), false));
            }
            let dt: jiff::civil::DateTime = s.parse().ok()?;
            let z = dt.to_zoned(tz.clone()).ok()?;
            Some((z.timestamp().as_second(), true))
        }
        _ => None,
    }
}

/// A path from a snapshot made absolute and clean (`/a/b`), or why it cannot be.
fn clean_path(path: &str) -> std::result::Result<String, &'static str> {
    if !path.starts_with('/') {
        return Err(
            "a relative path (pytp was given a relative directory): where it was is unknown",
        );
    }
    let mut parts = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => return Err("a path with `..`"),
            _ => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("the root directory, not a file");
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Why file records were left out, counted, with an example each.
#[derive(Default)]
struct Skipped(BTreeMap<String, (usize, String)>);

impl Skipped {
    fn add(&mut self, why: impl Into<String>, path: &str) {
        let e = self.0.entry(why.into()).or_insert((0, path.to_string()));
        e.0 += 1;
    }
}

fn file_record(
    path: &str,
    attrs: &Attrs,
    skipped: &mut Skipped,
    odd: &mut Skipped,
) -> Option<PlannedFile> {
    let clean = match clean_path(path) {
        Ok(p) => p,
        Err(why) => {
            skipped.add(why, path);
            return None;
        }
    };
    let a = match attrs {
        Attrs::Object(a) => a,
        Attrs::Other(what) => {
            skipped.add(format!("attributes are {what}, not an object"), path);
            return None;
        }
    };
    let kind = match &a.kind {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(other) => {
            skipped.add(format!("type {other} is not a file type"), path);
            return None;
        }
    };
    match kind {
        Some("symlink") => {
            let link = a
                .target
                .as_ref()
                .and_then(Value::as_str)
                .map(str::to_string);
            if link.is_none() {
                odd.add("symlinks whose target pytp could not read", path);
            }
            Some(PlannedFile {
                path: clean,
                kind: FileKind::Symlink,
                size: 0,
                mtime_ns: None,
                link,
            })
        }
        Some("file") | None => {
            if kind.is_none() && a.size.is_none() && a.mtime.is_none() {
                skipped.add("no type, size or mtime: not a file record", path);
                return None;
            }
            let size = match a.size.as_ref().and_then(as_integer) {
                Some(s) if s >= 0 => s,
                _ => {
                    odd.add("files without a usable size (recorded as 0 bytes)", path);
                    0
                }
            };
            let mtime_ns = a.mtime.as_ref().and_then(Value::as_f64).and_then(mtime_ns);
            if mtime_ns.is_none() {
                odd.add("files without a usable mtime", path);
            }
            Some(PlannedFile {
                path: clean,
                kind: FileKind::File,
                size,
                mtime_ns,
                link: None,
            })
        }
        Some(other) => {
            skipped.add(format!("unknown type `{other}`"), path);
            None
        }
    }
}

/// Python's float `st_mtime` as nanoseconds. A double holds about a quarter microsecond at
/// today's times, so the fraction is kept to the microsecond (1.25 s stays 1_250_000_000 ns).
fn mtime_ns(m: f64) -> Option<i64> {
    if !m.is_finite() || m.abs() >= 9.0e9 {
        return None;
    }
    let secs = m.floor();
    let micros = ((m - secs) * 1e6).round() as i64;
    Some(secs as i64 * 1_000_000_000 + micros * 1_000)
}

/// The deepest directory holding every path added.
#[derive(Debug, Default)]
struct CommonDir(Option<Vec<String>>);

impl CommonDir {
    fn add(&mut self, path: &str) {
        let mut dirs: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        dirs.pop();
        match &mut self.0 {
            None => self.0 = Some(dirs.into_iter().map(str::to_string).collect()),
            Some(common) => {
                let keep = common
                    .iter()
                    .zip(&dirs)
                    .take_while(|(a, b)| a.as_str() == **b)
                    .count();
                common.truncate(keep);
            }
        }
    }
}

/// The directory pytp backed up, and the `--job` it was given, from the file name and the
/// paths: the deepest directory holding every path whose name ends the file name.
fn source_of(stem: &str, common: &CommonDir) -> Option<(String, Option<String>)> {
    let common = common.0.as_ref()?;
    for depth in (1..=common.len()).rev() {
        let base = common[depth - 1].as_str();
        let dir = format!("/{}", common[..depth].join("/"));
        if stem == base {
            return Some((dir, None));
        }
        if let Some(job) = stem
            .strip_suffix(base)
            .and_then(|j| j.strip_suffix('_'))
            .filter(|j| !j.is_empty())
        {
            return Some((dir, Some(job.to_string())));
        }
    }
    None
}

/// The job a snapshot file's name stands for.
pub fn job_of(name: &str) -> String {
    let stem = name
        .strip_suffix(SNAPSHOT_SUFFIX)
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(name);
    if stem.is_empty() {
        UNNAMED_JOB.to_string()
    } else {
        stem.to_string()
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Turns a snapshot file into planned backups and the issues found on the way.
/// `file_mtime` dates entries without a timestamp.
pub fn plan_snapshot(
    path: &Path,
    snapshot: Snapshot,
    tz: &TimeZone,
    file_mtime: i64,
) -> PlannedFileSet {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let file = path.display().to_string();
    let job = job_of(&name);
    let mut issues = Vec::new();
    let stem = name.strip_suffix(SNAPSHOT_SUFFIX);
    if stem.is_none() {
        issues.push(issue(
            Severity::Note,
            Some(&file),
            None,
            format!("not named like a pytp snapshot file (*{SNAPSHOT_SUFFIX}): job `{job}`"),
        ));
    } else if job == UNNAMED_JOB {
        issues.push(issue(
            Severity::Incomplete,
            Some(&file),
            None,
            format!(
                "the name gives no job or directory (pytp was given a directory with a trailing \
                 slash and no --job): job `{UNNAMED_JOB}`"
            ),
        ));
    }

    let mut backups = Vec::new();
    let mut rejected = Vec::new();
    let mut common = CommonDir::default();
    let mut assumed_zone = false;
    let Snapshot { elements, damage } = snapshot;
    let entries = elements.len();
    // Each entry's raw form is dropped once planned: a file holds one copy at a time.
    for (index, element) in elements.into_iter().enumerate() {
        let mut note = |severity, message: String| {
            issues.push(issue(severity, Some(&file), Some(index), message))
        };
        let e = match element {
            Element::Entry(e) => *e,
            Element::Other(what) => {
                let why = format!("{what}, not a backup entry");
                note(Severity::NotImported, why.clone());
                rejected.push((index, why));
                continue;
            }
        };
        let kind = match e.kind.as_ref() {
            None | Some(Value::Null) => {
                note(
                    Severity::Note,
                    "no type: taken as a full backup (pytp's first format wrote full backups \
                     without one)"
                        .into(),
                );
                "full"
            }
            Some(v) => match v.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("full") => "full",
                Some("incremental") => "incremental",
                Some("differential") => "differential",
                _ => {
                    let why = format!("unknown backup type {v}");
                    note(Severity::NotImported, why.clone());
                    rejected.push((index, why));
                    continue;
                }
            },
        };
        // Time.
        let ts_text = e
            .timestamp
            .as_ref()
            .filter(|v| !v.is_null())
            .map(value_text);
        let parsed = match e.timestamp.as_ref().filter(|v| !v.is_null()) {
            Some(v) => match parse_timestamp(v, tz) {
                Some((t, assumed)) => {
                    assumed_zone |= assumed;
                    Ok(t)
                }
                None => Err(format!("timestamp {v} is not a date and time")),
            },
            None => Err("no timestamp".to_string()),
        };
        let started_at = match parsed {
            Ok(t) => t,
            Err(why) => {
                note(
                    Severity::Incomplete,
                    format!(
                        "{why}: dated by the snapshot file's modification time ({}), the latest \
                         it can be",
                        crate::catalog::format_time(file_mtime)
                    ),
                );
                file_mtime
            }
        };
        // Tape.
        let label = match e.label.as_ref() {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(_)) | Some(Value::Null) | None => None,
            Some(other) => {
                note(
                    Severity::Incomplete,
                    format!("label is {}, not a tape label", json_kind(other)),
                );
                None
            }
        };
        let volume = match &label {
            Some(l) => {
                let v = volume_label(l);
                if &v != l {
                    note(
                        Severity::Note,
                        format!(
                            "tape label `{l}` is volume `{v}` (tapedeck labels: up to 32 letters, \
                             digits, -, _ and .)"
                        ),
                    );
                }
                v
            }
            None => {
                note(
                    Severity::Incomplete,
                    format!(
                        "no tape label recorded: put on placeholder volume `{UNKNOWN_VOLUME}` \
                         (find the tape by its tape file number and date)"
                    ),
                );
                UNKNOWN_VOLUME.to_string()
            }
        };
        let tape_file = match e.tape_position.as_ref() {
            None => {
                note(
                    Severity::Incomplete,
                    "no tape position recorded: tape file unknown".into(),
                );
                None
            }
            Some(v) => match as_integer(v) {
                Some(n) if n >= 0 => Some(n),
                Some(n) => {
                    note(
                        Severity::Incomplete,
                        format!(
                            "tape position {n}: the drive did not know where it was: tape file \
                             unknown"
                        ),
                    );
                    None
                }
                None => {
                    note(
                        Severity::Incomplete,
                        format!("tape position {v} is not a file number: tape file unknown"),
                    );
                    None
                }
            },
        };
        let strategy = e
            .strategy
            .as_ref()
            .and_then(Value::as_str)
            .map(str::to_string);
        let block_size = e.block_size.as_ref().and_then(as_integer);
        if !e.unknown_keys.is_empty() {
            note(
                Severity::Note,
                format!("ignored keys: {}", e.unknown_keys.join(", ")),
            );
        }
        // Files.
        let mut files = Vec::new();
        // Without a timestamp, the file list tells entries apart (see backup_uuid).
        let digest = ts_text.is_none();
        let mut digest_input = Vec::new();
        match &e.files {
            Some(Files::Map(map)) => {
                let mut skipped = Skipped::default();
                let mut odd = Skipped::default();
                for (path, attrs) in map {
                    if digest {
                        digest_input.extend_from_slice(path.as_bytes());
                        digest_input.push(0);
                        digest_input.extend_from_slice(attrs.digest_text().as_bytes());
                        digest_input.push(0);
                    }
                    if let Some(f) = file_record(path, attrs, &mut skipped, &mut odd) {
                        common.add(&f.path);
                        files.push(f);
                    }
                }
                for (why, (n, example)) in skipped.0 {
                    note(
                        Severity::NotImported,
                        format!("{n} file record(s) not imported: {why} (e.g. `{example}`)"),
                    );
                }
                for (why, (n, example)) in odd.0 {
                    note(
                        Severity::Incomplete,
                        format!("{n} {why} (e.g. `{example}`)"),
                    );
                }
                if map.is_empty() {
                    note(
                        Severity::Incomplete,
                        if kind == "full" {
                            "full backup with no file list (pytp stopped recording them late \
                             2025): imported without files; its files cannot be found by name, \
                             only restored whole from its tape file"
                                .to_string()
                        } else {
                            format!("{kind} backup with an empty file list")
                        },
                    );
                }
            }
            Some(Files::Other(what)) => note(
                Severity::Incomplete,
                format!("files is {what}, not a file list: imported without files"),
            ),
            None => note(
                Severity::Incomplete,
                "no file list: imported without files".into(),
            ),
        }
        let uuid = backup_uuid(&name, index, ts_text.as_deref(), &digest_input);
        backups.push(PlannedBackup {
            uuid,
            index,
            kind,
            label,
            volume,
            tape_file,
            started_at,
            timestamp: ts_text,
            strategy,
            block_size,
            files,
        });
    }
    if let Some(d) = &damage {
        let n = entries;
        let before = format!(
            "the {n} entr{} before it imported",
            if n == 1 { "y" } else { "ies" }
        );
        let message = if d.after_array {
            format!(
                "{}: all entries imported; what follows the list is not",
                d.message
            )
        } else if d.entries_after == 0 {
            format!(
                "damaged: {}; {before}, the entry it breaks off is lost",
                d.message
            )
        } else {
            format!(
                "damaged: {}; {before}, not the damaged entry nor the {} after it",
                d.message, d.entries_after
            )
        };
        issues.push(Issue {
            severity: Severity::NotImported,
            file: Some(file.clone()),
            line: Some(d.line),
            column: Some(d.column),
            entry: None,
            message,
        });
    }
    let (source_dir, pytp_job) = match stem {
        Some(stem) => match source_of(stem, &common) {
            Some((dir, job)) => (Some(dir), job),
            None => (None, None),
        },
        None => (None, None),
    };
    PlannedFileSet {
        path: path.to_path_buf(),
        name,
        job,
        pytp_job,
        source_dir,
        entries,
        backups,
        rejected,
        lost: damage
            .as_ref()
            .filter(|d| !d.after_array)
            .map_or(0, |d| 1 + d.entries_after),
        damage,
        assumed_zone,
        issues,
    }
}

// ---------------------------------------------------------------------------------------------
// The migration
// ---------------------------------------------------------------------------------------------

/// What to import, and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// pytp's `config.json`.
    pub config: Option<PathBuf>,
    /// pytp's snapshot directory, or one snapshot file.
    pub snapshots: Option<PathBuf>,
    /// Write the configuration snippet to this new file.
    pub write_config: Option<PathBuf>,
    /// Change nothing; say what would happen.
    pub dry_run: bool,
    /// Zone for pytp's zone-less timestamps (IANA name); default the system's.
    pub timezone: Option<String>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| PytpError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The snapshot files to import: `dir` itself if it is a file, else its `*_backup.json`
/// files by name; other files are reported.
fn snapshot_files(dir: &Path, issues: &mut Vec<Issue>) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(dir).map_err(|source| PytpError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    if meta.is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut ignored = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| PytpError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| PytpError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(SNAPSHOT_SUFFIX) && path.is_file() {
            files.push(path);
        } else {
            ignored.push(name);
        }
    }
    files.sort();
    ignored.sort();
    if !ignored.is_empty() {
        let shown: Vec<&str> = ignored.iter().take(10).map(String::as_str).collect();
        issues.push(issue(
            Severity::Note,
            Some(&dir.display().to_string()),
            None,
            format!(
                "{} entr{} not named *{SNAPSHOT_SUFFIX}, not read: {}{}",
                ignored.len(),
                if ignored.len() == 1 { "y" } else { "ies" },
                shown.join(", "),
                if ignored.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            ),
        ));
    }
    if files.is_empty() {
        issues.push(issue(
            Severity::Note,
            Some(&dir.display().to_string()),
            None,
            format!("no pytp snapshot files (*{SNAPSHOT_SUFFIX}) here"),
        ));
    }
    Ok(files)
}

/// The catalogue as the migration sees it: open for writing, open for reading (dry run), or
/// not there yet (dry run).
enum Cat {
    Write(Catalog),
    Read(Catalog),
    None,
}

impl Cat {
    fn get(&self) -> Option<&Catalog> {
        match self {
            Cat::Write(c) | Cat::Read(c) => Some(c),
            Cat::None => None,
        }
    }
}

/// A volume's id and report row, by catalogue label.
struct Volumes {
    ids: HashMap<String, i64>,
    /// When tapedeck labelled the volume, if it did (which erases what pytp wrote).
    labelled: HashMap<String, i64>,
    rows: BTreeMap<String, VolumeReport>,
}

impl Volumes {
    /// The volume for a planned backup: found, created (as full, or retired for the
    /// placeholder) or, in a dry run, to be created.
    fn resolve(&mut self, cat: &mut Cat, plan: &PlannedBackup) -> Result<Option<i64>> {
        let label = plan.volume.as_str();
        if let Some(row) = self.rows.get_mut(label) {
            row.backups += 1;
            return Ok(self.ids.get(label).copied());
        }
        let placeholder = plan.label.is_none();
        let pytp_label = match &plan.label {
            None => Some("(none)".to_string()),
            Some(l) if l != label => Some(l.clone()),
            Some(_) => None,
        };
        let existing = match cat.get() {
            Some(c) => c.find_volume(label)?,
            None => None,
        };
        let (state, id) = match (existing, cat) {
            (Some(v), _) => {
                if let Some(at) = v.labelled_at.filter(|_| !placeholder) {
                    self.labelled.insert(label.to_string(), at);
                }
                ("existing", Some(v.id))
            }
            (None, Cat::Write(c)) => {
                c.register_volume(label, None, None)?;
                let status = if placeholder {
                    VolumeStatus::Retired
                } else {
                    VolumeStatus::Full
                };
                let v = c.set_volume_status(label, status, None)?;
                ("created", Some(v.id))
            }
            (None, _) => ("would-create", None),
        };
        if let Some(id) = id {
            self.ids.insert(label.to_string(), id);
        }
        self.rows.insert(
            label.to_string(),
            VolumeReport {
                label: label.to_string(),
                pytp_label,
                state: state.to_string(),
                placeholder,
                backups: 1,
            },
        );
        Ok(id)
    }
}

impl Volumes {
    /// Whether tapedeck labelled the backup's volume after pytp wrote it, erasing it: the
    /// backup is then imported without a place on tape (and the volume left as it is).
    fn erased(&self, plan: &PlannedBackup, file: &str, issues: &mut Vec<Issue>) -> bool {
        let Some(&at) = self.labelled.get(&plan.volume) else {
            return false;
        };
        if at < plan.started_at {
            return false;
        }
        issues.push(issue(
            Severity::Incomplete,
            Some(file),
            Some(plan.index),
            format!(
                "volume {} was labelled by tapedeck on {}, after this backup, which erased it: \
                 imported without a place on tape",
                plan.volume,
                crate::catalog::format_time(at)
            ),
        ));
        true
    }
}

/// Imports pytp's configuration and history. `catalog_path` is tapedeck's catalogue;
/// `existing` tapedeck's configuration. Damaged or odd pytp input is reported, never fatal;
/// a catalogue that cannot be written is.
pub fn migrate(opts: &Options, catalog_path: &Path, existing: &ConfigFile) -> Result<Report> {
    if opts.config.is_none() && opts.snapshots.is_none() {
        return Err(PytpError::NothingToDo);
    }
    if let Some(p) = &opts.write_config {
        if opts.config.is_none() {
            return Err(PytpError::WriteWithoutConfig);
        }
        if p.exists() {
            return Err(PytpError::Exists { path: p.clone() });
        }
    }
    let tz = match &opts.timezone {
        Some(name) => TimeZone::get(name).map_err(|e| PytpError::TimeZone {
            name: name.clone(),
            message: e.to_string(),
        })?,
        None => TimeZone::system(),
    };
    let mut issues: Vec<Issue> = Vec::new();

    // config.json
    let mut config_report = None;
    if let Some(path) = &opts.config {
        let converted = read(path).and_then(|text| {
            let converted = convert_config(path, &text, existing);
            if matches!(converted, Err(PytpError::Json { .. })) {
                // `tapedeck --config tapedeck.toml migrate-pytp`: stop before touching a
                // catalogue the operator did not mean.
                let toml = std::str::from_utf8(&text)
                    .ok()
                    .filter(|t| !t.trim().is_empty());
                if toml.is_some_and(|t| Config::parse(path, t).is_ok()) {
                    return Err(PytpError::TapedeckConfig { path: path.clone() });
                }
            }
            converted
        });
        match converted {
            Ok(c) => {
                issues.extend(c.issues);
                config_report = Some(c.report);
            }
            Err(
                e @ (PytpError::Snippet(_)
                | PytpError::Catalog(_)
                | PytpError::TapedeckConfig { .. }),
            ) => return Err(e),
            Err(e) => {
                let (line, column) = match &e {
                    PytpError::Json { line, column, .. } => (Some(*line), Some(*column)),
                    _ => (None, None),
                };
                let message = match &e {
                    PytpError::Json { message, .. } | PytpError::Shape { message, .. } => {
                        message.clone()
                    }
                    other => other.to_string(),
                };
                issues.push(Issue {
                    severity: Severity::NotImported,
                    file: Some(path.display().to_string()),
                    line,
                    column,
                    entry: None,
                    message: format!("{message}: no drive or library imported"),
                });
            }
        }
    }

    // Where the history is.
    let snapshots = match (&opts.snapshots, &config_report) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Some(c)) => match &c.snapshot_dir {
            Some(dir) if Path::new(dir).is_dir() => {
                issues.push(issue(
                    Severity::Note,
                    Some(&c.path),
                    None,
                    format!("history read from snapshot_dir {dir} (no --snapshots given)"),
                ));
                Some(PathBuf::from(dir))
            }
            Some(dir) => {
                issues.push(issue(
                    Severity::Note,
                    Some(&c.path),
                    None,
                    format!(
                        "snapshot_dir {dir} is not a directory here: no history imported (give \
                         --snapshots DIR to import it)"
                    ),
                ));
                None
            }
            None => None,
        },
        (None, None) => None,
    };

    let mut files_report = Vec::new();
    let mut backups_report = Vec::new();
    let mut volumes = Volumes {
        ids: HashMap::new(),
        labelled: HashMap::new(),
        rows: BTreeMap::new(),
    };
    let mut summary = Summary::default();

    let mut assumed_zone = false;
    let list = match &snapshots {
        Some(dir) => match snapshot_files(dir, &mut issues) {
            Ok(list) => list,
            Err(e) => {
                issues.push(issue(
                    Severity::NotImported,
                    Some(&dir.display().to_string()),
                    None,
                    format!("{e}: no history imported"),
                ));
                Vec::new()
            }
        },
        None => Vec::new(),
    };

    let mut cat = if list.is_empty() {
        Cat::None
    } else if opts.dry_run {
        if catalog_path.exists() {
            Cat::Read(Catalog::open_read_only(catalog_path)?)
        } else {
            Cat::None
        }
    } else {
        Cat::Write(Catalog::open(catalog_path)?)
    };

    for path in &list {
        let file = path.display().to_string();
        let bytes = match read(path) {
            Ok(b) => b,
            Err(e) => {
                issues.push(issue(
                    Severity::NotImported,
                    Some(&file),
                    None,
                    format!("{e}: nothing imported from it"),
                ));
                continue;
            }
        };
        let mtime = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| jiff::Timestamp::try_from(t).ok())
            .map_or(0, |t| t.as_second());
        let snapshot = parse_snapshot(&bytes);
        drop(bytes);
        let planned = plan_snapshot(path, snapshot, &tz, mtime);
        summary.snapshot_files += 1;
        summary.entries += planned.entries + planned.lost;
        assumed_zone |= planned.assumed_zone;
        issues.extend(planned.issues.iter().cloned());
        let mut fr = FileReport {
            path: file.clone(),
            name: planned.name.clone(),
            job: planned.job.clone(),
            source_dir: planned.source_dir.clone(),
            pytp_job: planned.pytp_job.clone(),
            entries: planned.entries + planned.lost,
            imported: 0,
            already_imported: 0,
            not_imported: planned.rejected.len() + planned.lost,
            damaged_at: planned
                .damage
                .as_ref()
                .map(|d| format!("line {}, column {}", d.line, d.column)),
        };
        let mut rows = Vec::new();
        for (index, _) in &planned.rejected {
            rows.push(BackupReport {
                file: planned.name.clone(),
                entry: *index,
                outcome: Outcome::NotImported,
                uuid: None,
                job: planned.job.clone(),
                kind: None,
                started_at: None,
                timestamp: None,
                label: None,
                volume: None,
                tape_file: None,
                files: 0,
                bytes: 0,
            });
        }
        // What the catalogue already has of this job.
        let known: HashMap<String, BackupStatus> = match cat.get() {
            Some(c) => c
                .backups(Some(&planned.job), i64::MAX as usize)?
                .into_iter()
                .map(|b| (b.uuid, b.status))
                .collect(),
            None => HashMap::new(),
        };
        let mut parent: Option<String> = None;
        for plan in &planned.backups {
            let bytes: i64 = plan.files.iter().map(|f| f.size).sum();
            let mut row = BackupReport {
                file: planned.name.clone(),
                entry: plan.index,
                outcome: Outcome::Imported,
                uuid: Some(plan.uuid.clone()),
                job: planned.job.clone(),
                kind: Some(plan.kind.to_string()),
                started_at: Some(plan.started_at),
                timestamp: plan.timestamp.clone(),
                label: plan.label.clone(),
                volume: Some(plan.volume.clone()),
                tape_file: plan.tape_file,
                files: plan.files.len() as u64,
                bytes,
            };
            if let Some(status) = known.get(&plan.uuid) {
                if *status == BackupStatus::Complete {
                    row.outcome = Outcome::AlreadyImported;
                    fr.already_imported += 1;
                    summary.already_imported += 1;
                    parent = Some(plan.uuid.clone());
                } else {
                    row.outcome = Outcome::NotImported;
                    fr.not_imported += 1;
                    issues.push(issue(
                        Severity::NotImported,
                        Some(&file),
                        Some(plan.index),
                        format!(
                            "an earlier import of this entry did not finish (backup {} is \
                             {status} in the catalogue): it needs removing before it can be \
                             imported again",
                            plan.uuid
                        ),
                    ));
                }
                rows.push(row);
                continue;
            }
            let volume_id = volumes.resolve(&mut cat, plan)?;
            let volume_id = volume_id.filter(|_| !volumes.erased(plan, &file, &mut issues));
            match &mut cat {
                Cat::Write(c) => {
                    import_backup(c, &planned.job, plan, parent.as_deref(), volume_id)?;
                    if let Some(note) = merge_with_tape_import(c, plan, volume_id)? {
                        issues.push(issue(Severity::Note, Some(&file), Some(plan.index), note));
                    }
                    row.outcome = Outcome::Imported;
                }
                _ => row.outcome = Outcome::WouldImport,
            }
            fr.imported += 1;
            summary.imported += 1;
            summary.file_records += plan.files.len() as u64;
            parent = Some(plan.uuid.clone());
            rows.push(row);
        }
        rows.sort_by_key(|r| r.entry);
        backups_report.extend(rows);
        summary.not_imported += fr.not_imported;
        files_report.push(fr);
    }

    let created: Vec<&str> = volumes
        .rows
        .values()
        .filter(|v| !v.placeholder && v.state != "existing")
        .map(|v| v.label.as_str())
        .collect();
    if !created.is_empty() {
        issues.push(issue(
            Severity::Note,
            None,
            None,
            format!(
                "volume(s) {} {} registered as full and in no pool: no retention period protects \
                 pytp's data on them in the catalogue (tapedeck still refuses to label a tape \
                 holding data it did not write, unless forced)",
                created.join(", "),
                if opts.dry_run { "would be" } else { "are" }
            ),
        ));
    }
    if assumed_zone {
        issues.push(issue(
            Severity::Note,
            None,
            None,
            format!(
                "pytp's timestamps carry no time zone: read as local time in {} (see --timezone)",
                tz.iana_name().unwrap_or("this system's zone")
            ),
        ));
    }

    // The configuration snippet, last: a run that failed above has written nothing.
    if let (Some(c), Some(target)) = (&mut config_report, &opts.write_config) {
        if !opts.dry_run {
            write_new_file(target, &c.snippet)?;
        }
        c.written_to = Some(target.display().to_string());
    }

    summary.incomplete = issues
        .iter()
        .filter(|i| i.severity == Severity::Incomplete)
        .count();
    issues.sort_by_key(|i| i.severity);
    Ok(Report {
        dry_run: opts.dry_run,
        catalog: catalog_path.display().to_string(),
        config: config_report,
        snapshots: snapshots.map(|s| s.display().to_string()),
        files: files_report,
        backups: backups_report,
        volumes: volumes.rows.into_values().collect(),
        issues,
        summary,
    })
}

/// Where `catalog import-tape` read the tape file this entry wrote, the backup it recorded
/// (members read from tape, with their places and hashes) becomes this entry's: one
/// backup with pytp's identity, not two copies of the files. Returns what to tell.
fn merge_with_tape_import(
    cat: &mut Catalog,
    plan: &PlannedBackup,
    volume_id: Option<i64>,
) -> Result<Option<String>> {
    let (Some(volume_id), Some(tape_file)) = (volume_id, plan.tape_file) else {
        return Ok(None);
    };
    let read = cat
        .backups_in_tape_file(volume_id, tape_file)?
        .into_iter()
        .find(|k| k.origin == ORIGIN_IMPORT);
    let (Some(read), Some(ours)) = (read, cat.known_backup(&plan.uuid)?) else {
        return Ok(None);
    };
    if !cat.merge_backup_identity(read.id, ours.id)? {
        return Ok(None);
    }
    Ok(Some(format!(
        "tape file {tape_file} of volume {} was catalogued by import-tape: that backup is \
         this entry now ({}), with its members, their places on tape and hashes as read from \
         the tape",
        plan.volume, plan.uuid
    )))
}

/// Writes one planned backup to the catalogue: the backup, its tape file, its files, done.
/// Without a volume (its copy is gone) the files have no place on tape.
fn import_backup(
    cat: &mut Catalog,
    job: &str,
    plan: &PlannedBackup,
    parent: Option<&str>,
    volume_id: Option<i64>,
) -> Result<()> {
    let id = cat.begin_backup(&NewBackup {
        uuid: &plan.uuid,
        job: Some(job),
        label: plan.label.as_deref(),
        kind: plan.kind,
        parent_uuid: if plan.kind == "full" { None } else { parent },
        pool: None,
        started_at: plan.started_at,
        drive: None,
        strategy: plan.strategy.as_deref(),
        block_size: plan.block_size,
        origin: ORIGIN,
    })?;
    let result = (|| -> Result<()> {
        if let Some(volume_id) = volume_id {
            cat.add_backup_volume(id, 0, volume_id, plan.tape_file, None)?;
        }
        let mut batch = cat.file_batch(id);
        for f in &plan.files {
            batch.push(FileRecord {
                path: f.path.clone(),
                kind: f.kind,
                size: f.size,
                mtime_ns: f.mtime_ns,
                mode: None,
                uid: None,
                gid: None,
                link: f.link.clone(),
                blake3: None,
                segments: volume_id
                    .map(|volume_id| SegmentRecord {
                        volume_id,
                        tape_file: plan.tape_file,
                        block: None,
                        offset: None,
                        file_offset: 0,
                        length: f.size,
                    })
                    .into_iter()
                    .collect(),
            })?;
        }
        batch.finish()?;
        cat.finish_backup(id, BackupStatus::Complete, plan.started_at, None)?;
        Ok(())
    })();
    if let Err(e) = result {
        // Best effort: mark it failed, so it is not taken for a running backup.
        let _ = cat.finish_backup(
            id,
            BackupStatus::Failed,
            crate::catalog::now(),
            Some(&format!("migrate-pytp: {e}")),
        );
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> TimeZone {
        TimeZone::UTC
    }

    fn plan(name: &str, json: &str) -> PlannedFileSet {
        let snap = parse_snapshot(json.as_bytes());
        plan_snapshot(Path::new(name), snap, &utc(), 1_700_000_000)
    }

    fn messages(p: &PlannedFileSet) -> String {
        p.issues
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn uuids_are_stable_and_depend_on_file_index_and_time() {
        let a = backup_uuid("home_backup.json", 0, Some("2025-01-01T10:00:00"), b"");
        assert_eq!(
            a,
            backup_uuid("home_backup.json", 0, Some("2025-01-01T10:00:00"), b"x")
        );
        assert_ne!(
            a,
            backup_uuid("home_backup.json", 1, Some("2025-01-01T10:00:00"), b"")
        );
        assert_ne!(
            a,
            backup_uuid("home_backup.json", 0, Some("2025-01-02T10:00:00"), b"")
        );
        assert_ne!(
            a,
            backup_uuid("work_backup.json", 0, Some("2025-01-01T10:00:00"), b"")
        );
        assert_ne!(
            backup_uuid("f", 0, None, b"a"),
            backup_uuid("f", 0, None, b"b"),
            "without a time the file list tells entries apart"
        );
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 8);
        // Pinned: a change here would duplicate history imported by an earlier tapedeck.
        assert_eq!(
            backup_uuid(
                "nightly_docs_backup.json",
                2,
                Some("2025-10-01T03:00:00.123456"),
                b""
            ),
            "6965ca00-b75d-8b26-9ef9-f729bcacd461"
        );
    }

    #[test]
    fn labels_become_valid_volume_labels() {
        assert_eq!(volume_label("P0003SL9"), "P0003SL9");
        assert_eq!(volume_label("my tape/1"), "my-tape-1");
        let long = volume_label(&"x".repeat(40));
        assert!(valid_volume_label(&long) && long.len() == 32, "{long}");
        assert_ne!(long, volume_label(&"x".repeat(41)));
        assert!(valid_volume_label(&volume_label("äöü")));
    }

    #[test]
    fn timestamps_are_local_unless_zoned() {
        let v = Value::String("2025-11-03T14:22:05.123456".into());
        assert_eq!(parse_timestamp(&v, &utc()), Some((1_762_179_725, true)));
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            parse_timestamp(&v, &berlin),
            Some((1_762_179_725 - 3600, true))
        );
        let z = Value::String("2025-11-03T14:22:05+00:00".into());
        assert_eq!(parse_timestamp(&z, &berlin), Some((1_762_179_725, false)));
        assert_eq!(
            parse_timestamp(&Value::String("yesterday".into()), &utc()),
            None
        );
    }

    #[test]
    fn modern_entries_plan_with_kind_label_position_and_files() {
        let p = plan(
            "/snap/nightly_docs_backup.json",
            r#"[{"type": "full", "label": "P0001L9", "timestamp": "2025-12-01T02:00:00",
                 "strategy": "tar", "block_size": 524288, "files": {}, "tape_position": 4},
                {"type": "incremental", "label": "P0001L9", "timestamp": "2025-12-02T02:00:00",
                 "strategy": "tar", "block_size": 524288, "tape_position": "5",
                 "files": {"/data/docs/a.txt": {"type": "file", "mtime": 1764640800.5, "size": 12},
                           "/data/docs/sub/l": {"type": "symlink", "target": "../a.txt", "valid": true}}}]"#,
        );
        assert_eq!(p.job, "nightly_docs");
        assert_eq!(p.source_dir.as_deref(), Some("/data/docs"));
        assert_eq!(p.pytp_job.as_deref(), Some("nightly"));
        assert_eq!(p.backups.len(), 2);
        let full = &p.backups[0];
        assert_eq!(
            (full.kind, full.tape_file, full.files.len()),
            ("full", Some(4), 0)
        );
        let inc = &p.backups[1];
        assert_eq!((inc.kind, inc.tape_file), ("incremental", Some(5)));
        assert_eq!(inc.strategy.as_deref(), Some("tar"));
        assert_eq!(inc.files[0].mtime_ns, Some(1_764_640_800_500_000_000));
        assert_eq!(inc.files[1].kind, FileKind::Symlink);
        assert_eq!(inc.files[1].link.as_deref(), Some("../a.txt"));
        let m = messages(&p);
        assert!(m.contains("entry 0: full backup with no file list"), "{m}");
        assert!(!m.contains("entry 1"), "nothing to say about entry 1: {m}");
    }

    #[test]
    fn old_and_odd_entries_are_imported_with_what_they_lack_reported() {
        let p = plan(
            "/snap/docs_backup.json",
            r#"[{"files": {"/data/docs/a": {"mtime": 1.5, "size": 3}}},
                {"type": "incremental", "label": null, "timestamp": "2025-01-01T00:00:00",
                 "tape_position": -1, "files": {"/data/docs/b": {"type": "file", "mtime": 2, "size": 4}}},
                {"type": "incremental", "label": "T1", "timestamp": "2025-01-02T00:00:00",
                 "tape_position": "The tape drive is not ready.",
                 "files": {"rel/c": {"type": "file", "mtime": 2, "size": 4},
                           "/data/docs/d": {"type": "fifo"}}},
                {"type": "weekly", "files": {}},
                42]"#,
        );
        assert_eq!(p.backups.len(), 3);
        assert_eq!(p.rejected.len(), 2);
        let m = messages(&p);
        for want in [
            "entry 0: no type: taken as a full backup",
            "entry 0: no timestamp: dated by the snapshot file's modification time",
            "entry 0: no tape label recorded: put on placeholder volume `pytp-unknown`",
            "entry 0: no tape position recorded",
            "entry 1: tape position -1",
            "entry 2: tape position \"The tape drive is not ready.\" is not a file number",
            "entry 2: 1 file record(s) not imported: a relative path",
            "entry 2: 1 file record(s) not imported: unknown type `fifo`",
            "entry 3: unknown backup type \"weekly\"",
            "entry 4: a number, not a backup entry",
        ] {
            assert!(m.contains(want), "missing `{want}` in:\n{m}");
        }
        assert_eq!(p.backups[0].started_at, 1_700_000_000);
        assert_eq!(p.backups[0].files[0].path, "/data/docs/a");
        assert_eq!(p.backups[1].volume, UNKNOWN_VOLUME);
        assert_eq!(p.backups[2].files.len(), 0);
    }

    #[test]
    fn damage_keeps_the_entries_before_it_and_says_where() {
        let text = "[{\"type\": \"full\", \"files\": {}},\n {\"type\": \"incremental\", \"files\": {\"/a\": {\"type\": \"file\", \"mtime\": 1, \"size\": 1}}},\n {\"type\": \"incremental\" \"files\": {}},\n {\"type\": \"incremental\", \"files\": {}}]";
        let s = parse_snapshot(text.as_bytes());
        assert_eq!(s.elements.len(), 2);
        let d = s.damage.clone().unwrap();
        assert_eq!(d.line, 3);
        assert_eq!(d.entries_after, 1, "the entry after the damaged one");
        let truncated = &text.as_bytes()[..70];
        let s = parse_snapshot(truncated);
        assert_eq!(s.elements.len(), 1);
        assert!(s.damage.unwrap().message.contains("truncated"));
        let s = parse_snapshot(b"{\"type\": \"full\"}");
        assert!(s.elements.is_empty());
        assert!(s.damage.unwrap().message.contains("expected a JSON array"));
        let s = parse_snapshot(b"[] trailing");
        assert!(s.damage.unwrap().after_array);
    }

    #[test]
    fn source_directory_and_job_come_from_the_name_and_paths() {
        let source_of = |stem: &str, paths: &[&str]| {
            let mut c = CommonDir::default();
            for p in paths {
                c.add(p);
            }
            super::source_of(stem, &c)
        };
        assert_eq!(
            source_of("Videos", &["/data/Videos/a/x", "/data/Videos/b/y"]),
            Some(("/data/Videos".into(), None))
        );
        assert_eq!(
            source_of("my_job_Videos", &["/data/Videos/x"]),
            Some(("/data/Videos".into(), Some("my_job".into())))
        );
        assert_eq!(source_of("Videos", &["/data/Other/x"]), None);
        assert_eq!(source_of("Videos", &[]), None);
        assert_eq!(job_of("_backup.json"), UNNAMED_JOB);
        assert_eq!(job_of("a_b_backup.json"), "a_b");
    }

    #[test]
    fn pytp_configuration_becomes_a_tapedeck_snippet() {
        let text = br#"{"tar_dir": "/t", "snapshot_dir": "/s", "memory_buffer": 16,
            "tape_drives": [{"name": "lto9", "device_path": "/dev/nst0", "block_size": 524288},
                            {"name": "old lto6", "device_path": "/dev/nst1", "block_size": 2048},
                            {"name": "nodev"}],
            "tape_libraries": [{"name": "msl2024", "device_path": "/dev/sch0", "slots": 23,
                                "drives": ["old lto6", "lto9", "ghost"]}]}"#;
        let c = convert_config(Path::new("/p/config.json"), text, &ConfigFile::default()).unwrap();
        let parsed = Config::parse(Path::new("x"), &c.report.snippet).unwrap();
        assert_eq!(parsed.drives.len(), 2);
        assert_eq!(parsed.drives[0].block_size, Some(524_288));
        assert_eq!(parsed.drives[1].name, "old-lto6");
        assert_eq!(parsed.drives[1].block_size, None);
        assert_eq!(parsed.libraries[0].drives, vec!["old-lto6", "lto9"]);
        assert_eq!(parsed.libraries[0].changer, PathBuf::from("/dev/sch0"));
        assert!(
            c.report.snippet.contains("# model = \"LTO-9\""),
            "{}",
            c.report.snippet
        );
        assert_eq!(c.report.snapshot_dir.as_deref(), Some("/s"));
        let m: Vec<String> = c.issues.iter().map(|i| i.to_string()).collect();
        let m = m.join("\n");
        for want in [
            "`memory_buffer` (16): not imported",
            "tar_dir \"/t\": not imported",
            "block size 2048 bytes is outside",
            "drive nodev has no device_path: not imported",
            "drive ghost is not an imported drive",
            "slots 23 not imported",
        ] {
            assert!(m.contains(want), "missing `{want}` in:\n{m}");
        }
        let err = convert_config(
            Path::new("/p/c.json"),
            b"{\n\"a\": ",
            &ConfigFile::default(),
        )
        .unwrap_err();
        assert!(matches!(err, PytpError::Json { line: 2, .. }), "{err}");
    }

    #[test]
    fn a_volume_tapedeck_labelled_since_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("catalog.db");
        let mut cat = Catalog::open(&db).unwrap();
        cat.record_label(&crate::catalog::LabelRecord {
            label: "P0001L9",
            barcode: None,
            uuid: "u",
            pool: None,
            media: None,
            capacity: None,
            block_size: 524_288,
            used: 1024,
            location: None,
        })
        .unwrap();
        drop(cat);
        let snap = dir.path().join("docs_backup.json");
        std::fs::write(
            &snap,
            r#"[{"type": "full", "label": "P0001L9", "timestamp": "2025-12-01T02:00:00",
                 "files": {"/d/a": {"type": "file", "mtime": 1, "size": 1}}, "tape_position": 1}]"#,
        )
        .unwrap();
        let opts = Options {
            snapshots: Some(snap),
            timezone: Some("UTC".into()),
            ..Options::default()
        };
        let r = migrate(&opts, &db, &ConfigFile::default()).unwrap();
        assert_eq!(r.summary.imported, 1);
        assert_eq!(r.volumes[0].state, "existing");
        assert!(
            r.issues.iter().any(|i| i.severity == Severity::Incomplete
                && i.message.contains("was labelled by tapedeck")),
            "{:#?}",
            r.issues
        );
        let cat = Catalog::open(&db).unwrap();
        let v = cat.volume("P0001L9").unwrap();
        assert_eq!(
            (v.status, v.tape_files),
            (VolumeStatus::Empty, 1),
            "untouched"
        );
        let a = cat.find_path("/d/a").unwrap();
        assert_eq!(a.len(), 1);
        assert!(a[0].segments.is_empty(), "no place on tape: {a:?}");
    }

    #[test]
    fn import_is_idempotent_and_findable() {
        let dir = tempfile::tempdir().unwrap();
        let snaps = dir.path().join("snaps");
        std::fs::create_dir(&snaps).unwrap();
        std::fs::write(
            snaps.join("docs_backup.json"),
            r#"[{"type": "full", "label": "P0001L9", "timestamp": "2025-12-01T02:00:00",
                 "files": {"/data/docs/a": {"type": "file", "mtime": 1, "size": 10}},
                 "tape_position": 3},
                {"type": "incremental", "label": "P0001L9", "timestamp": "2025-12-02T02:00:00",
                 "files": {"/data/docs/a": {"type": "file", "mtime": 2, "size": 11}},
                 "tape_position": 4}]"#,
        )
        .unwrap();
        let db = dir.path().join("catalog.db");
        let opts = Options {
            snapshots: Some(snaps),
            timezone: Some("UTC".into()),
            ..Options::default()
        };
        let dry = migrate(
            &Options {
                dry_run: true,
                ..opts.clone()
            },
            &db,
            &ConfigFile::default(),
        )
        .unwrap();
        assert_eq!(dry.summary.imported, 2);
        assert!(dry
            .backups
            .iter()
            .all(|b| b.outcome == Outcome::WouldImport));
        assert!(!db.exists(), "a dry run creates no catalogue");
        let first = migrate(&opts, &db, &ConfigFile::default()).unwrap();
        assert_eq!((first.summary.imported, first.summary.file_records), (2, 2));
        assert_eq!(first.volumes[0].state, "created");
        let second = migrate(&opts, &db, &ConfigFile::default()).unwrap();
        assert_eq!(
            (second.summary.imported, second.summary.already_imported),
            (0, 2)
        );
        let cat = Catalog::open(&db).unwrap();
        let versions = cat.find_path("/data/docs/a").unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0].size, 11);
        assert_eq!(versions[0].segments[0].volume, "P0001L9");
        assert_eq!(versions[0].segments[0].tape_file, Some(4));
        assert_eq!(versions[1].segments[0].tape_file, Some(3));
        assert_eq!(versions[0].backup.kind, "incremental");
        assert_eq!(cat.volume("P0001L9").unwrap().status, VolumeStatus::Full);
        let backups = cat.backups(Some("docs"), 10).unwrap();
        assert_eq!(backups.len(), 2);
        assert!(backups.iter().all(|b| b.origin == ORIGIN));
    }
}
