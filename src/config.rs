//! Configuration: a TOML file (`$TAPEDECK_CONFIG`, else `/etc/tapedeck/config.toml` for
//! root or `~/.config/tapedeck/config.toml`) and a data directory (`$TAPEDECK_HOME`, else
//! `/var/lib/tapedeck` for root or `~/.local/share/tapedeck`). Every error names the file,
//! the key and what is allowed; `tapedeck config` prints the effective result.

use crate::backup::flow::FlowPolicy;
use crate::tape::drive_model::DriveModel;
use crate::units::{deserialize_opt_buffer_size, deserialize_opt_size, format_size};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Smallest and largest block size tapedeck writes with.
pub const MIN_BLOCK_SIZE: u64 = 64 * 1024;
pub const MAX_BLOCK_SIZE: u64 = 8 * 1024 * 1024;
pub const DEFAULT_BLOCK_SIZE: u64 = 512 * 1024;

/// Whether tapedeck writes with blocks of this size: see [`block_size_rule`].
pub fn allowed_block_size(bytes: u64) -> bool {
    (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&bytes) && bytes % 1024 == 0
}

/// The block-size rule in words, for messages.
pub fn block_size_rule() -> String {
    format!(
        "a multiple of 1 KiB from {} to {}",
        format_size(MIN_BLOCK_SIZE),
        format_size(MAX_BLOCK_SIZE)
    )
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("configuration {}: `{key}`: {message}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("cannot tell where the {what} lives: set {var} (HOME is not set either)")]
    NoHome {
        what: &'static str,
        var: &'static str,
    },
}

/// `[[drive]]`: a real tape drive driven through Linux `st`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveConfig {
    /// Name used on the command line (`--drive NAME`).
    pub name: String,
    /// The non-rewinding `st` device, e.g. `/dev/nst0`.
    pub device: PathBuf,
    /// The drive's SCSI generic device for log pages and TapeAlert, e.g. `/dev/sg1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sg_device: Option<PathBuf>,
    /// Block size to write with (64 KiB .. 8 MiB); default 512 KiB.
    #[serde(
        default,
        deserialize_with = "deserialize_opt_size",
        skip_serializing_if = "Option::is_none"
    )]
    pub block_size: Option<u64>,
    /// Drive model (`LTO-5` .. `LTO-9`), for speed matching figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// `[[library]]`: a tape library (changer) and the drives in it, in element order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibraryConfig {
    pub name: String,
    /// The changer's SCSI generic device, e.g. `/dev/sg3`.
    pub changer: PathBuf,
    /// Names of the `[[drive]]`s in the library, in the changer's drive element order.
    pub drives: Vec<String>,
}

/// `[vlib]`: the virtual library.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlibConfig {
    /// Whether the virtual library's drives are offered; default: only when no `[[drive]]`
    /// is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Its directory; default `$TAPEDECK_HOME/vlib`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// error, warn, info, debug or trace (stderr shows `warn` and up unless `-v`).
    #[serde(default = "default_level")]
    pub level: String,
    /// Directory of the rolling log files; default `$TAPEDECK_HOME/logs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// `daily`, `hourly` or `never`.
    #[serde(default = "default_rotation")]
    pub rotation: String,
    /// How many rotated files to keep (days, with daily rotation).
    #[serde(default = "default_retain")]
    pub retain_days: u32,
}

fn default_level() -> String {
    "info".into()
}
fn default_rotation() -> String {
    "daily".into()
}
fn default_retain() -> u32 {
    90
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: default_level(),
            dir: None,
            rotation: default_rotation(),
            retain_days: default_retain(),
        }
    }
}

/// `[buffer]`: defaults for `tapedeck backup`'s memory buffer and flow control (the
/// command-line options win).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Ring buffer size (a bare number means GiB, as `--memory-buffer`); default
    /// min(16 GiB, 40 % of available memory).
    #[serde(
        default,
        deserialize_with = "deserialize_opt_buffer_size",
        skip_serializing_if = "Option::is_none"
    )]
    pub size: Option<u64>,
    /// Start streaming at this fill, percent.
    #[serde(default = "default_high")]
    pub high_watermark: f64,
    /// Stop streaming at this fill, percent (hysteresis).
    #[serde(default = "default_low")]
    pub low_watermark: f64,
    /// `adaptive`, `hysteresis` or `trickle`.
    #[serde(default = "default_flow")]
    pub flow: FlowPolicy,
    /// Parallel readers for small files.
    #[serde(default = "default_readers")]
    pub readers: u16,
}

fn default_high() -> f64 {
    90.0
}
fn default_low() -> f64 {
    5.0
}
fn default_flow() -> FlowPolicy {
    FlowPolicy::Adaptive
}
fn default_readers() -> u16 {
    8
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            size: None,
            high_watermark: default_high(),
            low_watermark: default_low(),
            flow: default_flow(),
            readers: default_readers(),
        }
    }
}

/// `[spool]`: defaults for `tapedeck backup --strategy tar` (the command-line options
/// win).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Where the chunk files go; default the system's temporary directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Disk space the spool may take; default half the free space, at most 100 GiB.
    #[serde(
        default,
        deserialize_with = "deserialize_opt_size",
        skip_serializing_if = "Option::is_none"
    )]
    pub size: Option<u64>,
    /// Chunks the spool is split into.
    #[serde(default = "default_spool_chunks")]
    pub chunks: u32,
}

fn default_spool_chunks() -> u32 {
    crate::backup::spool::DEFAULT_CHUNKS
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: None,
            size: None,
            chunks: default_spool_chunks(),
        }
    }
}

/// `[catalog]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// The SQLite catalogue; default `$TAPEDECK_HOME/catalog.db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// The configuration file's contents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Drive used when `--drive` and `TAPEDECK_DRIVE` are not given; default: the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_drive: Option<String>,
    #[serde(default)]
    pub catalog: CatalogConfig,
    #[serde(default, rename = "drive", skip_serializing_if = "Vec::is_empty")]
    pub drives: Vec<DriveConfig>,
    #[serde(default, rename = "library", skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<LibraryConfig>,
    #[serde(default)]
    pub vlib: VlibConfig,
    #[serde(default)]
    pub buffer: BufferConfig,
    #[serde(default)]
    pub spool: SpoolConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
}

/// The effective configuration: the file (if any) plus resolved paths and defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if one was found.
    pub source: Option<PathBuf>,
    pub home: PathBuf,
    pub file: ConfigFile,
}

/// Where the configuration file is looked for, and whether it must exist.
pub fn config_path(explicit: Option<&Path>) -> Result<(PathBuf, bool), ConfigError> {
    if let Some(p) = explicit {
        return Ok((p.to_path_buf(), true));
    }
    if let Some(p) = std::env::var_os("TAPEDECK_CONFIG").filter(|v| !v.is_empty()) {
        return Ok((PathBuf::from(p), true));
    }
    if nix::unistd::geteuid().is_root() {
        return Ok((PathBuf::from("/etc/tapedeck/config.toml"), false));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => home_dir("configuration", "TAPEDECK_CONFIG")?.join(".config"),
    };
    Ok((base.join("tapedeck").join("config.toml"), false))
}

/// The data directory: `$TAPEDECK_HOME`, `/var/lib/tapedeck` for root, else
/// `$XDG_DATA_HOME/tapedeck` or `~/.local/share/tapedeck`.
pub fn data_home() -> Result<PathBuf, ConfigError> {
    if let Some(p) = std::env::var_os("TAPEDECK_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/tapedeck"));
    }
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => home_dir("data directory", "TAPEDECK_HOME")?
            .join(".local")
            .join("share"),
    };
    Ok(base.join("tapedeck"))
}

fn home_dir(what: &'static str, var: &'static str) -> Result<PathBuf, ConfigError> {
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or(ConfigError::NoHome { what, var })
}

impl Config {
    /// Loads the configuration: `explicit` (from `--config`) or the usual places.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = config_path(explicit)?;
        let home = data_home()?;
        let (source, file) = match std::fs::read_to_string(&path) {
            Ok(text) => (Some(path.clone()), Self::parse(&path, &text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                (None, ConfigFile::default())
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Ok(Config { source, home, file })
    }

    /// Parses and validates configuration text (`path` is only for messages).
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        file.validate(path)?;
        Ok(file)
    }

    /// A configuration with defaults only (no file), rooted at `home`.
    pub fn defaults(home: PathBuf) -> Config {
        Config {
            source: None,
            home,
            file: ConfigFile::default(),
        }
    }

    pub fn vlib_enabled(&self) -> bool {
        self.file
            .vlib
            .enabled
            .unwrap_or(self.file.drives.is_empty())
    }

    /// The virtual library's directory.
    pub fn vlib_dir(&self) -> PathBuf {
        self.file
            .vlib
            .dir
            .clone()
            .unwrap_or_else(|| self.home.join("vlib"))
    }

    /// True when the virtual library's directory is the default one (created on first use).
    pub fn vlib_dir_is_default(&self) -> bool {
        self.file.vlib.dir.is_none()
    }

    /// The block size to write with on drive `name`: its `block_size`, else the default.
    pub fn drive_block_size(&self, name: &str) -> u64 {
        self.file
            .drives
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.block_size)
            .unwrap_or(DEFAULT_BLOCK_SIZE)
    }

    pub fn log_dir(&self) -> PathBuf {
        self.file
            .logging
            .dir
            .clone()
            .unwrap_or_else(|| self.home.join("logs"))
    }

    pub fn catalog_path(&self) -> PathBuf {
        self.file
            .catalog
            .path
            .clone()
            .unwrap_or_else(|| self.home.join("catalog.db"))
    }

    /// The file with every default filled in, as `tapedeck config` prints it.
    pub fn effective(&self) -> ConfigFile {
        let mut f = self.file.clone();
        f.catalog.path = Some(self.catalog_path());
        f.vlib.enabled = Some(self.vlib_enabled());
        f.vlib.dir = Some(self.vlib_dir());
        f.logging.dir = Some(self.log_dir());
        for d in &mut f.drives {
            d.block_size.get_or_insert(DEFAULT_BLOCK_SIZE);
        }
        f
    }
}

impl ConfigFile {
    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let names_ok = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        for (i, d) in self.drives.iter().enumerate() {
            let key = |field: &str| format!("drive[{i}].{field}");
            if !names_ok(&d.name) {
                return Err(invalid(
                    key("name"),
                    format!("`{}`: use letters, digits, `-` and `_`", d.name),
                ));
            }
            if self.drives[..i].iter().any(|o| o.name == d.name) {
                return Err(invalid(key("name"), format!("`{}` is used twice", d.name)));
            }
            if !d.device.is_absolute() {
                return Err(invalid(
                    key("device"),
                    format!(
                        "`{}` must be an absolute path such as /dev/nst0",
                        d.device.display()
                    ),
                ));
            }
            if let Some(bs) = d.block_size {
                if !allowed_block_size(bs) {
                    return Err(invalid(
                        key("block_size"),
                        format!("{} is not allowed: {}", format_size(bs), block_size_rule()),
                    ));
                }
            }
            if let Some(m) = &d.model {
                if DriveModel::builtin(m).is_none() {
                    return Err(invalid(
                        key("model"),
                        format!(
                            "unknown model `{m}`; known: {}",
                            DriveModel::BUILTIN.join(", ")
                        ),
                    ));
                }
            }
        }
        for (i, l) in self.libraries.iter().enumerate() {
            for name in &l.drives {
                if !self.drives.iter().any(|d| &d.name == name) {
                    return Err(invalid(
                        format!("library[{i}].drives"),
                        format!(
                            "`{name}` is not a configured [[drive]] (configured: {})",
                            self.drives
                                .iter()
                                .map(|d| d.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        let b = &self.buffer;
        for (key, v) in [
            ("buffer.high_watermark", b.high_watermark),
            ("buffer.low_watermark", b.low_watermark),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(invalid(
                    key.into(),
                    format!("{v} is not a percentage (0..100)"),
                ));
            }
        }
        if b.low_watermark >= b.high_watermark {
            return Err(invalid(
                "buffer.low_watermark".into(),
                format!(
                    "{} must be below buffer.high_watermark ({})",
                    b.low_watermark, b.high_watermark
                ),
            ));
        }
        if b.readers == 0 {
            return Err(invalid("buffer.readers".into(), "at least 1".into()));
        }
        if !(1..=64).contains(&self.spool.chunks) {
            return Err(invalid("spool.chunks".into(), "1 to 64".into()));
        }
        const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];
        if !LEVELS.contains(&self.logging.level.as_str()) {
            return Err(invalid(
                "logging.level".into(),
                format!(
                    "`{}` is not a level; use one of {}",
                    self.logging.level,
                    LEVELS.join(", ")
                ),
            ));
        }
        const ROTATIONS: &[&str] = &["daily", "hourly", "never"];
        if !ROTATIONS.contains(&self.logging.rotation.as_str()) {
            return Err(invalid(
                "logging.rotation".into(),
                format!(
                    "`{}` is not a rotation; use one of {}",
                    self.logging.rotation,
                    ROTATIONS.join(", ")
                ),
            ));
        }
        if self.logging.retain_days == 0 {
            return Err(invalid(
                "logging.retain_days".into(),
                "must be at least 1".into(),
            ));
        }
        if let Some(d) = &self.default_drive {
            let known = self.drives.iter().any(|x| &x.name == d);
            if !known && !self.drives.is_empty() && self.vlib.enabled != Some(true) {
                return Err(invalid(
                    "default_drive".into(),
                    format!("`{d}` is not a configured [[drive]]"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        Config::parse(Path::new("/etc/tapedeck/config.toml"), text)
    }

    #[test]
    fn the_shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/config.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let f = Config::parse(&path, &text).unwrap();
        assert_eq!(f.drives.len(), 2);
        assert_eq!(f.libraries[0].drives, vec!["lto9", "lto6"]);
    }

    #[test]
    fn a_full_configuration_parses() {
        let f = parse(
            r#"
            default_drive = "lto9"
            [catalog]
            path = "/srv/tapedeck/catalog.db"
            [[drive]]
            name = "lto9"
            device = "/dev/nst0"
            sg_device = "/dev/sg1"
            block_size = "1MiB"
            model = "LTO-9"
            [[drive]]
            name = "lto6"
            device = "/dev/nst1"
            [[library]]
            name = "msl"
            changer = "/dev/sg3"
            drives = ["lto9", "lto6"]
            [logging]
            level = "debug"
            retain_days = 30
            "#,
        )
        .unwrap();
        assert_eq!(f.drives[0].block_size, Some(1 << 20));
        assert_eq!(f.drives.len(), 2);
        assert_eq!(f.logging.retain_days, 30);
    }

    #[test]
    fn unknown_keys_are_named_with_what_is_allowed() {
        let err = parse("[[drive]]\nname = \"a\"\ndevice = \"/dev/nst0\"\nblok_size = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/tapedeck/config.toml"), "{err}");
        assert!(err.contains("blok_size"), "{err}");
        assert!(err.contains("block_size"), "lists the allowed keys: {err}");
    }

    #[test]
    fn bad_values_name_the_key_and_the_range() {
        let err =
            parse("[[drive]]\nname = \"a\"\ndevice = \"/dev/nst0\"\nblock_size = \"16MiB\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("drive[0].block_size"), "{err}");
        assert!(err.contains("64 KiB") && err.contains("8 MiB"), "{err}");
        let err = parse("[logging]\nlevel = \"loud\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("logging.level") && err.contains("debug"),
            "{err}"
        );
        let err = parse("[[drive]]\nname = \"a\"\ndevice = \"/dev/nst0\"\n[[library]]\nname = \"l\"\nchanger = \"/dev/sg3\"\ndrives = [\"b\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("library[0].drives") && err.contains("`b`"),
            "{err}"
        );
    }

    #[test]
    fn spool_defaults_and_their_checks() {
        let f = parse("[spool]\ndir = \"/var/spool/td\"\nsize = \"100GiB\"\n").unwrap();
        assert_eq!(f.spool.size, Some(100 << 30));
        assert_eq!(f.spool.chunks, 2);
        assert_eq!(f.spool.dir.as_deref(), Some(Path::new("/var/spool/td")));
        let err = parse("[spool]\nchunks = 0\n").unwrap_err().to_string();
        assert!(err.contains("spool.chunks"), "{err}");
    }

    #[test]
    fn buffer_defaults_and_their_checks() {
        let f = parse("[buffer]\nsize = \"4GiB\"\nflow = \"hysteresis\"\n").unwrap();
        assert_eq!(f.buffer.size, Some(4 << 30));
        assert_eq!(f.buffer.flow, FlowPolicy::Hysteresis);
        assert_eq!(
            (f.buffer.high_watermark, f.buffer.low_watermark),
            (90.0, 5.0)
        );
        let err = parse("[buffer]\nhigh_watermark = 40\nlow_watermark = 50\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("buffer.low_watermark"), "{err}");
        let err = parse("[buffer]\nflow = \"fast\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("adaptive"), "{err}");
    }

    #[test]
    fn the_virtual_library_is_the_default_only_without_real_drives() {
        let c = Config::defaults(PathBuf::from("/tmp/th"));
        assert!(c.vlib_enabled());
        assert_eq!(c.vlib_dir(), PathBuf::from("/tmp/th/vlib"));
        let mut c = c;
        c.file = parse("[[drive]]\nname = \"a\"\ndevice = \"/dev/nst0\"\n").unwrap();
        assert!(!c.vlib_enabled());
    }

    #[test]
    fn effective_configuration_round_trips_through_toml() {
        let c = Config::defaults(PathBuf::from("/tmp/th"));
        let text = toml::to_string(&c.effective()).unwrap();
        assert!(text.contains("/tmp/th/catalog.db"), "{text}");
        let back = Config::parse(Path::new("x"), &text).unwrap();
        assert_eq!(back.vlib.dir, Some(PathBuf::from("/tmp/th/vlib")));
    }
}
