//! The catalogue's schema as a list of migrations. Migrations are append-only: a shipped
//! migration is never edited, a change is a new one, and each says why it exists. The
//! schema version is SQLite's `user_version`: the number of migrations applied.

/// One step of the schema's history.
pub struct Migration {
    /// Why this migration exists.
    pub why: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        why: "the first catalogue: pools, volumes, jobs, backups and their volumes, interned \
          names and directories, packed member records, split-file segments, tape errors, \
          drive counters",
        sql: r#"
CREATE TABLE pools (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL CHECK (kind IN ('daily', 'weekly', 'monthly', 'archive')),
    retention_days INTEGER NOT NULL CHECK (retention_days >= 0),
    strategy       TEXT,
    block_size     INTEGER,
    created_at     INTEGER NOT NULL
);

CREATE TABLE volumes (
    id            INTEGER PRIMARY KEY,
    label         TEXT NOT NULL UNIQUE,
    barcode       TEXT UNIQUE,
    uuid          TEXT UNIQUE,
    pool_id       INTEGER REFERENCES pools (id),
    media         TEXT,
    capacity      INTEGER,
    used          INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL DEFAULT 'empty'
                  CHECK (status IN ('empty', 'appendable', 'full', 'error', 'retired')),
    location      TEXT,
    block_size    INTEGER,
    tape_files    INTEGER NOT NULL DEFAULT 0,
    expires_at    INTEGER,
    passes        INTEGER NOT NULL DEFAULT 0,
    labelled_at   INTEGER,
    written_at    INTEGER,
    error         TEXT
);
CREATE INDEX volumes_by_pool ON volumes (pool_id);

CREATE TABLE jobs (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    pool_id        INTEGER REFERENCES pools (id),
    sources        TEXT NOT NULL DEFAULT '[]',
    strategy       TEXT,
    schedule       TEXT,
    retention_days INTEGER,
    pre_script     TEXT,
    post_script    TEXT
);

CREATE TABLE backups (
    id          INTEGER PRIMARY KEY,
    uuid        TEXT NOT NULL UNIQUE,
    job_id      INTEGER REFERENCES jobs (id),
    label       TEXT,
    kind        TEXT NOT NULL CHECK (kind IN ('full', 'incremental', 'differential')),
    parent_id   INTEGER REFERENCES backups (id),
    pool_id     INTEGER REFERENCES pools (id),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    status      TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed', 'aborted')),
    bytes       INTEGER NOT NULL DEFAULT 0,
    files       INTEGER NOT NULL DEFAULT 0,
    drive       TEXT,
    host        TEXT,
    pid         INTEGER,
    strategy    TEXT,
    block_size  INTEGER,
    origin      TEXT NOT NULL DEFAULT 'tapedeck',
    error       TEXT
);
CREATE INDEX backups_by_job ON backups (job_id, started_at);
CREATE INDEX backups_by_status ON backups (status);

-- The tape files a backup wrote: one row per volume it touched, in order.
CREATE TABLE backup_volumes (
    backup_id   INTEGER NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    volume_id   INTEGER NOT NULL REFERENCES volumes (id),
    tape_file   INTEGER,
    first_block INTEGER,
    blocks      INTEGER,
    -- The volume was relabelled since: this copy is gone.
    overwritten INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (backup_id, seq)
) WITHOUT ROWID;
CREATE INDEX backup_volumes_by_volume ON backup_volumes (volume_id);

-- Every distinct file or directory name once; names_fts indexes their trigrams so a
-- substring search never scans the members.
CREATE TABLE names (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE VIRTUAL TABLE names_fts USING fts5 (
    name, content = '', detail = none, columnsize = 0, tokenize = 'trigram'
);

-- Directories interned as (parent, name); the root is id 1 with no parent.
CREATE TABLE dirs (
    id      INTEGER PRIMARY KEY,
    parent  INTEGER REFERENCES dirs (id),
    name_id INTEGER NOT NULL REFERENCES names (id)
);
CREATE UNIQUE INDEX dirs_by_parent ON dirs (parent, name_id);
INSERT INTO names (id, name) VALUES (1, '');
INSERT INTO dirs (id, parent, name_id) VALUES (1, NULL, 1);

-- A backup's members (files, directories, links, ...), in tape order, packed: one row per
-- run of up to 64 consecutive members of one directory (under 3600 bytes, so a row never
-- spills out of its 16 KiB page); `data` holds their entries in the
-- format of catalog::members (name, kind, size, mtime, mode, owner, link target, BLAKE3,
-- and where the member's tar header is: part = backup_volumes.seq, logical block, offset
-- in the block). Member number = first_seq + position in the run.
CREATE TABLE members (
    backup_id INTEGER NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
    first_seq INTEGER NOT NULL,
    dir_id    INTEGER NOT NULL REFERENCES dirs (id),
    count     INTEGER NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (backup_id, first_seq)
) WITHOUT ROWID;
CREATE INDEX members_by_dir ON members (dir_id);

-- Every distinct path once (name in directory), so a name found in names_fts leads to its
-- directories, and those to the backups that hold them.
CREATE TABLE paths (
    name_id INTEGER NOT NULL REFERENCES names (id),
    dir_id  INTEGER NOT NULL REFERENCES dirs (id),
    PRIMARY KEY (name_id, dir_id)
) WITHOUT ROWID;

-- The parts of a file split across volumes, in order. Imported history may know the
-- volume but not the tape file or block: those are NULL then.
CREATE TABLE segments (
    backup_id   INTEGER NOT NULL,
    file_seq    INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    volume_id   INTEGER NOT NULL REFERENCES volumes (id),
    tape_file   INTEGER,
    block       INTEGER,
    offset      INTEGER,
    file_offset INTEGER NOT NULL,
    length      INTEGER NOT NULL,
    PRIMARY KEY (backup_id, file_seq, seq),
    FOREIGN KEY (backup_id) REFERENCES backups (id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX segments_by_volume ON segments (volume_id);

CREATE TABLE tape_errors (
    id        INTEGER PRIMARY KEY,
    volume_id INTEGER REFERENCES volumes (id),
    backup_id INTEGER REFERENCES backups (id),
    drive     TEXT,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    position  INTEGER,
    sense     TEXT,
    detail    TEXT
);
CREATE INDEX tape_errors_by_volume ON tape_errors (volume_id);

-- A drive's own counters (log pages, TapeAlert) before and after a session.
CREATE TABLE drive_stats (
    id        INTEGER PRIMARY KEY,
    drive     TEXT NOT NULL,
    volume_id INTEGER REFERENCES volumes (id),
    backup_id INTEGER REFERENCES backups (id),
    at        INTEGER NOT NULL,
    phase     TEXT NOT NULL CHECK (phase IN ('before', 'after', 'sample')),
    counters  TEXT NOT NULL
);

-- How far names_fts has caught up with names.
CREATE TABLE fts_progress (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_to INTEGER NOT NULL
);
INSERT INTO fts_progress (id, indexed_to) VALUES (1, 1);
"#,
    },
    Migration {
        why: "incremental backups: member entries may carry the inode and ctime that the \
              comparison with the previous backup needs, an extension of the packed entry \
              format (catalog::members) that a tapedeck knowing only version 1 would \
              misread, so the version must go up for it to refuse the catalogue",
        sql: r#"
-- No table changes: the members' data may hold the entry extension from this version on.
"#,
    },
    Migration {
        why: "reliability: a checksum over each packed member record, so a damaged record is \
              found by every reader instead of being skipped (NULL for records written \
              before); and volumes that must never be written, such as tapes another tool \
              wrote and `catalog import-tape` catalogued, with the reason",
        sql: r#"
ALTER TABLE members ADD COLUMN sum INTEGER;
ALTER TABLE volumes ADD COLUMN read_only TEXT;
"#,
    },
];

/// The schema version this build writes: the number of migrations.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}
