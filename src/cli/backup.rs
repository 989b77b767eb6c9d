//! `tapedeck backup`: sources streamed as tar onto the loaded volume (or into a file, FIFO
//! or stdout with `--device`), directly, through a disk spool (`--strategy tar`), or tar
//! archives made elsewhere passed through (`--strategy dd`), with progress and a summary.

use super::jobrun::Running;
use super::output::print_json;
use super::watch::Show;
use super::{bad_input, Interrupted};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tapedeck::backup::flow::FlowPolicy;
use tapedeck::backup::incremental::{self, BackupKind, Plan};
use tapedeck::backup::spool::SpoolSettings;
use tapedeck::backup::telemetry::Telemetry;
use tapedeck::backup::{
    self, memory, passthrough, scan, space, spool, volume, BackupError, BackupRequest, Source,
    Strategy, Summary, Target,
};
use tapedeck::catalog::BackupStatus;
use tapedeck::config::{allowed_block_size, block_size_rule, Config, DEFAULT_BLOCK_SIZE};
use tapedeck::drives;
use tapedeck::interrupt::Interrupt;
use tapedeck::job::operator::WaitPolicy;
use tapedeck::job::sample::{self, Sampler};
use tapedeck::job::{registry, Event, Events, JobKind};
use tapedeck::units::{format_rate, format_size, parse_buffer_size, parse_size};

const AFTER_HELP: &str = "\
The volume in the drive is written when it is empty or appendable (and of --pool, if one is
given); a blank cartridge is labelled first, and in a library a fitting cartridge is loaded
when the drive holds none. No --drive picks the default drive. The backup is appended after
the volume's last tape file as one tar tape file, followed by an index tape file; nothing
already on the tape is overwritten. A volume written without --pool is held (protected with
no expiry) until `tapedeck volume expire` or a forced write gives it up.

Flow control (--flow): `adaptive` (default) paces the drive at the rate the sources
deliver whenever the drive can stream that slowly, so it slows down instead of stopping;
below its slowest speed it falls back to `hysteresis`: start at the high watermark, stream
down to the low one, wait for the high one again. `trickle` writes whatever is buffered.

--incremental stores what changed since the job's last complete backup (of any kind),
--since-full what changed since its last complete full backup (a differential). A file is
unchanged when its kind, size, mtime, mode, owner, inode and ctime are those of its newest
version in that backup's chain; directories are always stored; paths under the sources
that are gone are recorded as deleted. Without such a backup of the job, it runs as a full.

Strategies (--strategy): `direct` (default) streams the sources through the memory buffer
to the drive. `tar` stages the stream on disk in a bounded spool (--spool-size split into
--spool-chunks files in --spool-dir): one chunk fills while the one before is written to
tape and then deleted, so the disk holds at most the spool size, never the whole backup.
`dd` writes tar archives made elsewhere (--from FILE..., a FIFO, or `-` for stdin) as one
tape file with tapedeck's buffer, spanning and catalogue:
  tar -cf - DIR | tapedeck backup --strategy dd --from -
Their members are catalogued under their tar names with a leading `/`.

Ctrl-C or SIGTERM stops reading, writes what is buffered, ends the tape file with a
filemark and marks the backup aborted (exit 130); a second Ctrl-C stops writing at once.
The backup is a job: `tapedeck jobs` lists it, `tapedeck attach ID` watches it from another
terminal, `tapedeck answer ID loaded|eject|abort` answers its tape request, and closing its
terminal (SIGHUP) does not stop it. --detach starts it in its own session and prints its id.

Exit codes: 0 saved (skipped files are reported), 1 failed, 2 bad input, 130 interrupted.";

#[derive(Debug, Args)]
#[command(
    after_help = AFTER_HELP,
    override_usage = "tapedeck backup [OPTIONS] PATH...\n       \
                      tapedeck backup [OPTIONS] --strategy dd --from FILE..."
)]
pub struct BackupArgs {
    /// Files and directories to back up (absolute or relative to the current directory)
    #[arg(required_unless_present = "from", value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The drive [default: $TAPEDECK_DRIVE, default_drive, else the first drive]
    #[arg(long, short, env = "TAPEDECK_DRIVE")]
    drive: Option<String>,
    /// Only write to a volume of this pool (an empty unpooled volume joins it); in a
    /// library, a fitting cartridge is loaded when the drive holds none
    #[arg(long)]
    pool: Option<String>,
    /// Name of the job this backup belongs to (created on first use)
    #[arg(long)]
    job: Option<String>,
    /// Store only what changed since the job's last complete backup (of any kind) and
    /// record what was deleted; needs --job. Runs as a full when the job has no complete
    /// backup yet
    #[arg(long, conflicts_with_all = ["since_full", "device"])]
    incremental: bool,
    /// A differential: store what changed since the job's last complete full backup;
    /// needs --job. Runs as a full when the job has no complete full backup yet
    #[arg(long, alias = "differential", conflicts_with = "device")]
    since_full: bool,
    /// A free-text label for this backup, shown in listings
    #[arg(long)]
    label: Option<String>,
    /// Write the tar stream to this file, FIFO or `-` (stdout) instead of a drive: no
    /// label, no index, no catalogue
    #[arg(long, value_name = "PATH", conflicts_with_all = ["drive", "pool"])]
    device: Option<PathBuf>,
    /// Tape block size (64KiB..8MiB); an appended backup uses the volume's own
    #[arg(long, value_name = "SIZE")]
    block_size: Option<String>,
    /// Ring buffer size, e.g. 4GiB (a bare number means GiB, as pytp's --memory_buffer)
    /// [default: [buffer] size, else min(16 GiB, 40 % of available memory); at most 60 %
    /// of it]
    #[arg(long, value_name = "SIZE", alias = "memory_buffer")]
    memory_buffer: Option<String>,
    /// Start streaming at this buffer fill, percent [default: [buffer] high_watermark, 90]
    #[arg(long, value_name = "PCT", alias = "memory_buffer_percent")]
    high_watermark: Option<String>,
    /// Stop streaming at this buffer fill, percent [default: [buffer] low_watermark, 5]
    #[arg(long, value_name = "PCT", alias = "low-water-mark")]
    low_watermark: Option<String>,
    /// How the buffer is drained into the drive [default: [buffer] flow, adaptive]
    #[arg(long, value_enum)]
    flow: Option<FlowPolicy>,
    /// Parallel readers that prefetch small files (pytp's --max-concurrent-tars)
    /// [default: [buffer] readers, 8]
    #[arg(
        long,
        value_parser = clap::value_parser!(u16).range(1..=256),
        alias = "max-concurrent-tars",
        alias = "max_concurrent_tars"
    )]
    readers: Option<u16>,
    /// Wait this many seconds for a usable tape, looking at the drive every 2 s, instead of
    /// failing at once without a terminal; on a terminal, or detached, the job also waits
    /// for an answer (Enter, `tapedeck answer ID loaded`, `tapedeck attach ID`)
    #[arg(long, value_name = "SECS")]
    change_timeout: Option<u64>,
    /// Run as a detached job: in its own session, output to its own log file, reachable
    /// with `tapedeck attach ID` and `tapedeck answer ID`; prints the job's id and returns
    #[arg(long, conflicts_with = "device")]
    detach: bool,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    strategy: Box<StrategyArgs>,
}

/// How the stream reaches the drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StrategyName {
    /// The sources through the memory buffer
    Direct,
    /// The sources through a bounded disk spool
    Tar,
    /// Tar archives made elsewhere (--from), passed through
    Dd,
}

#[derive(Debug, Args)]
struct StrategyArgs {
    /// direct: stream the sources; tar: stage them through a disk spool; dd: write tar
    /// archives given with --from
    #[arg(long, value_enum, default_value = "direct")]
    strategy: StrategyName,
    /// For --strategy dd: the tar archives to write, in order, joined into one tape file
    /// (files, FIFOs, or `-` for standard input)
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with = "paths")]
    from: Vec<PathBuf>,
    /// For --strategy tar: where the spool's chunk files go (in a directory of their own,
    /// removed at the end) [default: [spool] dir, else the system's temporary directory]
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// For --strategy tar: disk space the spool may take, all chunks together, checked
    /// against the free space before anything starts [default: [spool] size, else half
    /// the free space, at most 100 GiB]
    #[arg(long, value_name = "SIZE")]
    spool_size: Option<String>,
    /// For --strategy tar: chunks the spool is split into; one fills while another is
    /// written [default: [spool] chunks, else 2]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    spool_chunks: Option<u32>,
}

impl StrategyArgs {
    /// Refuses options that belong to another strategy (`changes_only`: --incremental or
    /// --since-full, which compare scanned sources).
    fn check(&self, paths: &[PathBuf], changes_only: bool) -> Result<()> {
        let spool_given =
            self.spool_dir.is_some() || self.spool_size.is_some() || self.spool_chunks.is_some();
        if spool_given && self.strategy != StrategyName::Tar {
            return Err(bad_input(
                "--spool-dir, --spool-size and --spool-chunks are for --strategy tar",
            ));
        }
        if changes_only && self.strategy == StrategyName::Dd {
            return Err(bad_input(
                "--incremental and --since-full compare the scanned sources with an earlier \
                 backup; --strategy dd writes archives made elsewhere",
            ));
        }
        match self.strategy {
            StrategyName::Dd if self.from.is_empty() || !paths.is_empty() => Err(bad_input(
                "--strategy dd writes the tar archives given with --from (a file, a FIFO \
                 or `-` for stdin), not PATHs",
            )),
            StrategyName::Direct | StrategyName::Tar if !self.from.is_empty() => Err(bad_input(
                "--from is for --strategy dd; give the sources as PATHs",
            )),
            _ => Ok(()),
        }
    }

    /// The spool for `--strategy tar`, checked against the free space (and a chunk
    /// against the block size) before anything starts.
    fn spool(&self, config: &Config, block: u64) -> Result<SpoolSettings> {
        let file = &config.file.spool;
        let dir = self
            .spool_dir
            .clone()
            .or_else(|| file.dir.clone())
            .unwrap_or_else(std::env::temp_dir);
        let size = match (&self.spool_size, file.size) {
            (Some(text), _) => parse_size(text).map_err(bad_input)?,
            (None, Some(size)) => size,
            (None, None) => {
                spool::default_size(spool::free_space(&dir).map_err(BackupError::from)?)
            }
        };
        let settings = SpoolSettings {
            dir,
            size,
            chunks: self.spool_chunks.unwrap_or(file.chunks),
        };
        spool::check(&settings, block).map_err(BackupError::from)?;
        Ok(settings)
    }
}

fn percent(text: &str, what: &str) -> Result<f64> {
    let n: f64 = text
        .trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .map_err(|_| bad_input(format!("{what} `{text}` is not a percentage")))?;
    if !(0.0..=100.0).contains(&n) {
        return Err(bad_input(format!("{what} {n} is not between 0 and 100")));
    }
    Ok(n / 100.0)
}

pub fn run(args: BackupArgs, config: &Config) -> Result<()> {
    if args.detach {
        return super::detach::start(config, JobKind::Backup, args.json);
    }
    let interrupt = Interrupt::from_signals().context("installing the Ctrl-C handler")?;
    let what = match (&args.paths[..], &args.pool) {
        ([], _) => "tar archives (--from)".to_string(),
        (paths, pool) => {
            let listed: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            match pool {
                Some(pool) => format!("{} to pool {pool}", listed.join(" ")),
                None => listed.join(" "),
            }
        }
    };
    super::jobrun::run_job(
        config,
        JobKind::Backup,
        &what,
        interrupt.clone(),
        |running| {
            let show = Show::for_terminal(args.json);
            let summary = running.watched(show, || stream(&args, config, running, interrupt))?;
            // With `--device -` the tar stream is on stdout: the JSON summary goes to stderr.
            let to_stdout = args.device.as_deref().is_some_and(|d| d.as_os_str() == "-");
            report(&summary, args.json, to_stdout)?;
            match summary.status {
                BackupStatus::Complete => Ok(()),
                BackupStatus::Aborted => Err(Interrupted.into()),
                _ => Err(anyhow::anyhow!(
                    "backup {} failed: {}",
                    summary.uuid,
                    summary.error.as_deref().unwrap_or("unknown error")
                )),
            }
        },
    )
}

/// The backup itself, as the job runs it.
fn stream(
    args: &BackupArgs,
    config: &Config,
    running: &Running,
    interrupt: Interrupt,
) -> Result<Summary> {
    let job = &running.job;
    let defaults = &config.file.buffer;
    let high = match &args.high_watermark {
        Some(text) => percent(text, "--high-watermark")?,
        None => defaults.high_watermark / 100.0,
    };
    let low = match &args.low_watermark {
        Some(text) => percent(text, "--low-watermark")?,
        None => defaults.low_watermark / 100.0,
    };
    let policy = args.flow.unwrap_or(defaults.flow);
    let readers = args.readers.unwrap_or(defaults.readers);
    if low >= high {
        return Err(bad_input(format!(
            "--low-watermark ({}%) must be below --high-watermark ({}%)",
            low * 100.0,
            high * 100.0
        )));
    }
    let requested_block = match &args.block_size {
        Some(text) => {
            let b = parse_size(text).map_err(bad_input)?;
            if !allowed_block_size(b) {
                return Err(bad_input(format!(
                    "block size {} is not allowed: {}",
                    format_size(b),
                    block_size_rule()
                )));
            }
            Some(b as u32)
        }
        None => None,
    };
    let events = Events::of(job.clone());
    args.strategy
        .check(&args.paths, args.incremental || args.since_full)?;
    let check_block = requested_block.unwrap_or(DEFAULT_BLOCK_SIZE as u32) as u64;
    // The spool fits on its disk, and the tar archives are tar archives, before any tape
    // moves.
    let strategy = match args.strategy.strategy {
        StrategyName::Direct => Strategy::Direct,
        StrategyName::Tar => Strategy::Tar(args.strategy.spool(config, check_block)?),
        StrategyName::Dd => Strategy::Dd,
    };
    // An incremental or differential: its parent and previous state, before any tape
    // moves (the catalogue opened for it serves the backup).
    let (mut plan, mut cat_for_plan) = plan_kind(args, config, &events)?;
    // The sources are checked before any tape moves; the walk then runs alongside.
    let source = if strategy == Strategy::Dd {
        Source::Tar(open_tar_inputs(&args.strategy.from)?)
    } else {
        Source::Scan(
            scan::start_filtered(&args.paths, plan.filter.take())
                .map_err(tapedeck::backup::BackupError::from)?,
        )
    };
    let requested_buffer = match args.memory_buffer.as_deref() {
        Some(text) => Some(parse_buffer_size(text).map_err(bad_input)?),
        None => defaults.size,
    };

    let telemetry = Arc::new(Telemetry::default());
    let _sampler = Sampler::start(job.clone(), {
        let telemetry = telemetry.clone();
        move || sample::from_backup(&telemetry.snapshot())
    });
    let mut req = BackupRequest {
        job: args.job.clone(),
        label: args.label.clone(),
        pool: args.pool.clone(),
        buffer: 0,
        policy,
        high_watermark: high,
        low_watermark: low,
        range: None,
        drive_cache: None,
        readers: readers as usize,
        basis: plan.basis.take(),
        strategy,
    };
    let run_dir = registry::run_dir(&config.home);
    let others = || -> Vec<memory::Held> {
        registry::running_buffers(&run_dir, &job.id())
            .into_iter()
            .map(|(job, bytes, pid)| memory::Held::of(job, bytes, pid))
            .collect()
    };
    let available = memory::mem_available().map_err(tapedeck::backup::BackupError::from)?;
    // Refuse an oversized buffer before any tape moves (the volume's block size only
    // rounds it).
    memory::buffer_size(
        requested_buffer,
        available,
        requested_block.unwrap_or(DEFAULT_BLOCK_SIZE as u32) as u64,
        &others(),
    )
    .map_err(tapedeck::backup::BackupError::from)?;
    // The buffer is decided and recorded by one job at a time, so two starting together
    // see each other's.
    let claim_buffer = |block: u64| -> Result<u64> {
        let _turn = registry::memory_lock(&run_dir)?;
        let available = memory::mem_available().map_err(BackupError::from)?;
        let bytes = memory::buffer_size(requested_buffer, available, block, &others())
            .map_err(BackupError::from)?;
        running.set_buffer(bytes);
        Ok(bytes)
    };

    let summary = if let Some(device) = &args.device {
        let block = requested_block.unwrap_or(DEFAULT_BLOCK_SIZE as u32);
        req.buffer = claim_buffer(block as u64)?;
        let (name, out): (String, Box<dyn std::io::Write + Send>) = if device.as_os_str() == "-" {
            ("stdout".into(), Box::new(std::io::stdout()))
        } else {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(device)
                .map_err(|e| bad_input(format!("{}: {e}", device.display())))?;
            (device.display().to_string(), Box::new(file))
        };
        let target = Target::Device {
            name,
            out,
            block_size: block,
        };
        backup::run(
            &req,
            source,
            target,
            None,
            None,
            telemetry.clone(),
            events,
            interrupt.clone(),
        )?
    } else {
        let spec = drives::resolve(config, args.drive.as_deref())?;
        if let Some((range, cache)) = spec.streaming(config) {
            req.range = Some(range);
            req.drive_cache = Some(cache);
        }
        let mut cat = match cat_for_plan.take() {
            Some(cat) => cat,
            None => open_catalog(config)?,
        };
        if let Some(p) = &args.pool {
            cat.pool(p)?;
        }
        // The catalogue's disk can take the files the backup will record, before any
        // tape moves.
        let expected = expected_files(&source, &cat, args.job.as_deref())?;
        space::check_catalog(&cat, expected).map_err(BackupError::from)?;
        let block = requested_block.unwrap_or(config.drive_block_size(&spec.name) as u32);
        let wait = super::tape_change::policy(args.change_timeout.map(Duration::from_secs));
        let pool = args.pool.as_deref();
        let generation = spec.generation(config);
        let target = match super::tape_change::try_drive(
            &spec,
            &mut cat,
            pool,
            block,
            requested_block,
            job,
        )? {
            Ok(t) => t,
            // The tape in the drive will not do.
            Err(e) => other_volume(
                &spec,
                generation,
                &mut cat,
                pool,
                block,
                requested_block,
                e,
                &wait,
                job,
            )?,
        };
        req.buffer = claim_buffer(target.block_size as u64)?;
        if req.pool.is_none() {
            req.pool = target.volume.pool.clone();
        }
        // When the tape fills up: the next volume from the library, or from the operator.
        let stream_block = target.block_size;
        let volume_pool = req.pool.clone();
        let mut next_volume = |cat: &mut tapedeck::catalog::Catalog,
                               full: Box<dyn tapedeck::tape::TapeDrive>,
                               why: String|
         -> Result<volume::TapeTarget, BackupError> {
            // The full tape's drive is closed before anything moves.
            drop(full);
            other_volume(
                &spec,
                generation,
                cat,
                volume_pool.as_deref(),
                stream_block,
                Some(stream_block),
                BackupError::Refused(why),
                &wait,
                job,
            )
            .map_err(|e| BackupError::Refused(super::describe(&e)))
        };
        // Spanning needs someone to provide the next tape: the library, or the operator.
        let can_span = (req.pool.is_some() && spec.is_virtual()) || wait.waits();
        let run_events = events.clone();
        backup::run(
            &req,
            source,
            Target::Tape(Box::new(target)),
            Some(&mut cat),
            can_span.then_some(&mut next_volume as &mut backup::NextVolume<'_>),
            telemetry.clone(),
            run_events,
            interrupt.clone(),
        )?
    };
    Ok(summary)
}

/// How long the catalogue's space check waits for the scan to count the sources.
const COUNT_WAIT: Duration = Duration::from_millis(500);

/// The files a backup is expected to record, as far as is known before it starts: the
/// larger of the job's largest complete backup and what the scan has found (it runs
/// alongside: all of a small tree, the start of a large one, after a short wait).
fn expected_files(
    source: &Source,
    cat: &tapedeck::catalog::Catalog,
    job: Option<&str>,
) -> Result<u64> {
    let previous = match job {
        Some(j) => cat.largest_backup_of_job(j)?.unwrap_or(0),
        None => 0,
    };
    let scanned = match source {
        Source::Scan(entries) => {
            let started = std::time::Instant::now();
            while !entries.totals().done
                && !entries.scan_waiting()
                && started.elapsed() < COUNT_WAIT
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            entries.totals().entries as u64
        }
        Source::Tar(_) => 0,
    };
    Ok(previous.max(scanned))
}

/// The catalogue, with backups left running by dead processes marked failed.
fn open_catalog(config: &Config) -> Result<tapedeck::catalog::Catalog> {
    super::catalog::open(config)
}

/// What the backup builds on: for --incremental and --since-full, the job's parent
/// backup and the state to compare with (with the catalogue opened for it); a full
/// otherwise. A plan that falls back to a full says why in a warning.
fn plan_kind(
    args: &BackupArgs,
    config: &Config,
    events: &Events,
) -> Result<(Plan, Option<tapedeck::catalog::Catalog>)> {
    let (kind, flag) = match (args.incremental, args.since_full) {
        (true, _) => (BackupKind::Incremental, "--incremental"),
        (false, true) => (BackupKind::Differential, "--since-full"),
        (false, false) => return Ok((Plan::full(), None)),
    };
    let Some(job) = args.job.as_deref() else {
        return Err(bad_input(format!(
            "{flag} needs --job NAME: it stores what changed since an earlier backup of the \
             same job"
        )));
    };
    // A missing source is refused before the previous state is loaded.
    scan::check(&args.paths).map_err(tapedeck::backup::BackupError::from)?;
    let cat = open_catalog(config)?;
    let plan = incremental::plan(&cat, job, kind)?;
    match (&plan.note, plan.parent()) {
        (Some(note), _) => events.send(Event::Warning {
            message: note.clone(),
        }),
        (None, Some(parent)) => tracing::info!("{} of job {job} on backup {parent}", kind.as_str()),
        (None, None) => {}
    }
    Ok((plan, Some(cat)))
}

/// Opens and checks the `--from` archives; `-` (stdin) at most once.
fn open_tar_inputs(from: &[PathBuf]) -> Result<Vec<passthrough::TarInput>> {
    if from.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        return Err(bad_input("--from - (stdin) can be given once"));
    }
    from.iter()
        .map(|p| passthrough::open(p).map_err(|e| BackupError::from(e).into()))
        .collect()
}

/// A volume to use instead of the tape in the drive (`first` says why that will not do):
/// with a pool and a changer, the best cartridge of the library; else, or failing that, one
/// the operator loads, if someone can answer.
#[allow(clippy::too_many_arguments)]
fn other_volume(
    spec: &drives::DriveSpec,
    generation: Option<u8>,
    cat: &mut tapedeck::catalog::Catalog,
    pool: Option<&str>,
    block: u32,
    requested_block: Option<u32>,
    first: BackupError,
    wait: &WaitPolicy,
    job: &tapedeck::job::Job,
) -> Result<volume::TapeTarget> {
    let allocated = match pool {
        Some(p) if spec.is_virtual() => allocate_volume(
            spec,
            generation,
            cat,
            p,
            (block, requested_block),
            first,
            job,
        ),
        _ => Err(first.into()),
    };
    match allocated {
        Err(e) if wait.waits() && super::exit_code(&e) == 2 => super::tape_change::wait_for_tape(
            spec,
            generation,
            cat,
            pool,
            block,
            requested_block,
            BackupError::Refused(super::describe(&e)),
            wait,
            job,
        ),
        other => other,
    }
}

/// Loads the best cartridge of the changer for a backup of `pool` (see
/// [`tapedeck::backup::allocate`]) and returns it positioned for appending. `first` is why
/// the tape in the drive would not do.
#[allow(clippy::too_many_arguments)]
fn allocate_volume(
    spec: &drives::DriveSpec,
    generation: Option<u8>,
    cat: &mut tapedeck::catalog::Catalog,
    pool: &str,
    (block, requested_block): (u32, Option<u32>),
    first: tapedeck::backup::BackupError,
    job: &tapedeck::job::Job,
) -> Result<volume::TapeTarget> {
    let say = |message: String| super::tape_change::media(job, spec, message);
    use tapedeck::backup::allocate::{self, Fit};
    use tapedeck::tape::Changer;
    let (lib, drive_element) = super::changer::changer_of(spec)?;
    let inventory = lib.changer().inventory()?;
    let candidates = allocate::candidates(
        cat,
        pool,
        &inventory,
        drive_element,
        generation,
        tapedeck::catalog::now(),
    )?;
    let mut refused = vec![format!("the tape in {}: {first}", spec.name)];
    for c in candidates {
        if c.element == drive_element {
            if matches!(c.fit, Fit::Append | Fit::Empty | Fit::Scratch) {
                continue; // the tape just refused
            }
            // Already in the drive: it only needs relabelling.
        } else {
            if let Some((barcode, slot)) = super::changer::unload_into(spec, None)? {
                say(format!(
                    "Unloaded {barcode} from {} into slot {slot}.",
                    spec.name
                ));
            }
            lib.changer().move_medium(c.element, drive_element)?;
            say(format!(
                "Loaded {} from {} into {}: {}.",
                c.barcode,
                c.element,
                spec.name,
                c.fit.describe()
            ));
        }
        let mut drive = spec.open()?;
        // A cartridge that cannot be prepared (wrong generation, not blank, ...) is passed
        // over with the reason; the next one is tried.
        let prepared: Result<()> = (|| {
            match c.fit {
                Fit::Recycle => {
                    let label = c.label.clone().unwrap_or_else(|| c.barcode.clone());
                    let v = cat.volume(&label)?;
                    cat.check_overwrite(&v, tapedeck::catalog::Overwrite::Recycle)?;
                    let cartridge = super::catalog::virtual_cartridge(&spec.kind, &spec.name)?;
                    let block = v.block_size.map_or(block, |b| b as u32);
                    super::catalog::write_new_label(
                        drive.as_mut(),
                        cat,
                        spec,
                        &label,
                        cartridge.as_ref(),
                        Some(pool),
                        block,
                    )?;
                    say(format!("Relabelled {label}: its expired data is given up."));
                }
                Fit::Unknown => {
                    let labelled = super::catalog::label_if_unused(
                        drive.as_mut(),
                        cat,
                        spec,
                        Some(pool),
                        block,
                    )?;
                    match labelled {
                        Some(label) => say(format!("Labelled the blank cartridge as {label}.")),
                        None => return Err(bad_input(
                            "neither blank nor holding only a label the catalogue does not know",
                        )),
                    }
                }
                Fit::Append | Fit::Empty | Fit::Scratch => {}
            }
            Ok(())
        })();
        if let Err(e) = prepared {
            refused.push(format!("{}: {}", c.barcode, super::describe(&e)));
            continue;
        }
        match volume::prepare(drive, cat, Some(pool), requested_block) {
            Ok(t) => return Ok(t),
            Err(e) if e.is_bad_input() => refused.push(format!("{}: {e}", c.barcode)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(bad_input(format!(
        "no cartridge in the library can take a backup of pool {pool} ({})",
        refused.join("; ")
    )))
}

fn report(s: &Summary, json: bool, stdout_taken: bool) -> Result<()> {
    tracing::info!(
        uuid = %s.uuid, status = %s.status, files = s.files, bytes = s.bytes,
        tape_bytes = s.tape_bytes, secs = s.elapsed_secs, avg_rate = s.average_rate,
        min_rate = ?s.min_streaming_rate, stops = s.writer_stops, repositions = ?s.repositions,
        "backup summary"
    );
    if json && stdout_taken {
        errln!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    if json {
        return print_json(s);
    }
    let strategy = match s.strategy {
        "direct" => String::new(),
        other => format!(" ({other} strategy)"),
    };
    let place = match (&s.volume, s.tape_file) {
        (Some(v), Some(f)) if s.volumes.len() > 1 => format!(
            "volume {v}, tape file {f} at block {}, continued on {}",
            s.first_block.unwrap_or(0),
            s.volumes[1..].join(", ")
        ),
        (Some(v), Some(f)) => format!(
            "volume {v}, tape file {f} at block {}",
            s.first_block.unwrap_or(0)
        ),
        _ => s.drive.clone(),
    };
    errln!("Backup {} {}{strategy}: {place}", s.uuid, s.status);
    match (&s.parent, s.unchanged) {
        (Some(parent), Some(unchanged)) => errln!(
            "  kind      {} on {parent}: {unchanged} unchanged (left out), {} deleted (recorded)",
            s.kind.as_str(),
            s.deleted
        ),
        (Some(parent), None) => errln!("  kind      {} on {parent}", s.kind.as_str()),
        (None, _) => errln!("  kind      {}", s.kind.as_str()),
    }
    errln!(
        "  files     {} saved ({}), {} skipped, {} changed while read, {} not saved",
        s.files,
        format_size(s.bytes),
        s.skipped,
        s.changed,
        s.damaged
    );
    if s.streamed > s.files {
        errln!(
            "  NOT SAVED {} of the {} files streamed onto tape: the catalogue did not record \
             them; back them up again once it can be written",
            s.streamed - s.files,
            s.streamed
        );
    }
    errln!(
        "  written   {} in {:.1} s, average {} onto tape, lowest one-second rate while streaming {}",
        format_size(s.tape_bytes),
        s.elapsed_secs,
        format_rate(s.average_rate),
        s.min_streaming_rate
            .map(format_rate)
            .unwrap_or_else(|| "-".into())
    );
    errln!(
        "  buffer    {} ({:?}), peak memory {}, writer stops {}, drive repositions {}",
        format_size(s.buffer),
        s.policy,
        s.peak_memory.map(format_size).unwrap_or_else(|| "-".into()),
        s.writer_stops,
        s.repositions
            .map(|r| r.to_string())
            .unwrap_or_else(|| "n/a".into())
    );
    if !s.failed_volumes.is_empty() {
        errln!(
            "  PULL      {}: write error, marked in error; the members in flight were written \
             again on the next volume",
            s.failed_volumes.join(", ")
        );
    }
    if let (Some(size), Some(peak)) = (s.spool_size, s.peak_spool_bytes) {
        errln!(
            "  spool     {} on disk at most, of {} allowed",
            format_size(peak),
            format_size(size)
        );
    }
    Ok(())
}
