//! The command line against the virtual library: what an operator types, what comes
//! back, and the exit codes (0 ok, 1 failure, 2 bad input).

mod common;

use common::Home;
use predicates::prelude::*;
use std::fs;

#[test]
fn first_use_creates_the_default_library() {
    let h = Home::new();
    let out = h.stdout(&["tape", "status", "--drive", "lto9", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "lto9");
    assert_eq!(v["kind"], "virtual");
    assert_eq!(v["online"], false);
    assert!(h.vlib().join("library.json").exists());
    assert!(h.cartridge("TD0001L9").join("cartridge.json").exists());
    assert!(h.cartridge("TD0008L6").join("cartridge.json").exists());
}

#[test]
fn status_after_load_shows_cartridge_block_size_position_and_flags() {
    let h = Home::new();
    h.init_fast();
    h.run(&["tape", "load", "--drive", "lto9"])
        .success()
        .stdout(predicate::str::contains(
            "Loaded TD0001L9 from slot 1 into lto9",
        ));
    let v: serde_json::Value =
        serde_json::from_str(&h.stdout(&["tape", "status", "--drive", "lto9", "--json"])).unwrap();
    assert_eq!(v["cartridge"], "TD0001L9");
    assert_eq!(v["online"], true);
    assert_eq!(v["block_size"], 524288);
    assert_eq!(v["position"], 0);
    assert_eq!(v["flags"], serde_json::json!(["BOT", "ONLINE"]));
    h.run(&["tape", "status", "--drive", "lto9"])
        .success()
        .stdout(predicate::str::contains("Cartridge:   TD0001L9"))
        .stdout(predicate::str::contains("Block size:  512 KiB fixed"));
}

#[test]
fn mt_style_positioning_survives_between_commands() {
    let h = Home::new();
    h.init_fast();
    h.run(&["load", "1", "--drive", "lto9"]).success();
    let tape = |args: &[&str]| {
        let mut all = vec!["tape"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--drive", "lto9"]);
        h.stdout(&all)
    };
    tape(&["weof", "3"]);
    assert_eq!(tape(&["tell"]), "At block 3.\n");
    tape(&["rewind"]);
    tape(&["fsf", "2"]);
    assert_eq!(tape(&["tell"]), "At block 2.\n");
    tape(&["bsf"]);
    assert_eq!(tape(&["tell"]), "At block 1.\n");
    tape(&["eod"]);
    let v: serde_json::Value = serde_json::from_str(&tape(&["tell", "--json"])).unwrap();
    assert_eq!(v["position"], 3);
    tape(&["seek", "1"]);
    assert_eq!(tape(&["tell"]), "At block 1.\n");
    tape(&["setblk", "256KiB"]);
    assert!(tape(&["status"]).contains("256 KiB fixed"));
    tape(&["weof", "--immediate"]);
    assert_eq!(
        tape(&["tell"]),
        "At block 2.\n",
        "writing at block 1 cut the tape there"
    );
    tape(&["unload"]);
    assert!(tape(&["status"]).contains("TD0001L9 (ejected)"));
    tape(&["load"]);
    assert_eq!(tape(&["tell"]), "At block 0.\n");
}

#[test]
fn spacing_into_end_of_data_fails_and_says_where_the_tape_is() {
    let h = Home::new();
    h.init_fast();
    h.run(&["load", "1", "--drive", "lto9"]).success();
    h.run(&["tape", "weof", "--drive", "lto9"]).success();
    h.run(&["tape", "fsf", "3", "--drive", "lto9"])
        .code(1)
        .stderr(predicate::str::contains("end of data"));
    h.run(&["tape", "seek", "9", "--drive", "lto9"])
        .code(2)
        .stderr(predicate::str::contains("beyond end of data"));
}

#[test]
fn unknown_drive_lists_the_known_ones() {
    let h = Home::new();
    h.run(&["tape", "status", "--drive", "lto7"])
        .code(2)
        .stderr(predicate::str::contains("unknown drive `lto7`"))
        .stderr(predicate::str::contains("lto9, lto6"));
}

#[test]
fn drive_from_the_environment() {
    let h = Home::new();
    h.init_fast();
    h.cmd()
        .env("TAPEDECK_DRIVE", "lto6")
        .args(["tape", "status"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Drive:       lto6"));
}

#[test]
fn no_tape_loaded_is_a_clear_failure() {
    let h = Home::new();
    h.init_fast();
    h.run(&["tape", "rewind", "--drive", "lto6"])
        .code(1)
        .stderr(predicate::str::contains("lto6: no tape loaded"));
}

#[test]
fn write_protected_cartridge_refuses_writes() {
    let h = Home::new();
    h.init_fast();
    h.run(&["vlib", "set", "TD0001L9", "--write-protect", "on"])
        .success();
    h.run(&["load", "1", "--drive", "lto9"]).success();
    h.run(&["tape", "weof", "--drive", "lto9"])
        .code(1)
        .stderr(predicate::str::contains("write-protected"));
    h.run(&["tape", "status", "--drive", "lto9"])
        .success()
        .stdout(predicate::str::contains("WR_PROT"));
}

#[test]
fn block_size_beyond_the_drive_is_bad_input() {
    let h = Home::new();
    h.init_fast();
    h.run(&["tape", "setblk", "16MiB", "--drive", "lto9"])
        .code(2)
        .stderr(predicate::str::contains("outside what the drive accepts"));
    h.run(&["tape", "setblk", "lots", "--drive", "lto9"])
        .code(2)
        .stderr(predicate::str::contains("not a size"));
}

#[test]
fn a_damaged_library_json_is_named_and_left_alone() {
    let h = Home::new();
    h.init_fast();
    let path = h.vlib().join("library.json");
    fs::write(&path, "{\"format\": 1, \"drives\": [").unwrap();
    h.run(&["tape", "status"])
        .code(1)
        .stderr(predicate::str::contains("library.json"))
        .stderr(predicate::str::contains("damaged"));
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "{\"format\": 1, \"drives\": ["
    );
}

#[test]
fn a_damaged_cartridge_json_is_named() {
    let h = Home::new();
    h.init_fast();
    h.run(&["load", "1", "--drive", "lto9"]).success();
    let path = h.cartridge("TD0001L9").join("cartridge.json");
    fs::write(&path, "[]").unwrap();
    h.run(&["tape", "status", "--drive", "lto9"])
        .code(1)
        .stderr(predicate::str::contains("TD0001L9/cartridge.json"));
    assert_eq!(fs::read_to_string(&path).unwrap(), "[]");
}

#[test]
fn a_busy_drive_names_the_process_holding_it() {
    let h = Home::new();
    h.init_fast();
    let lock = h.vlib().join("locks/drive-lto9.lock");
    fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .expect("flock(1) from util-linux");
    // Wait until the lock is taken.
    let mut taken = false;
    for _ in 0..100 {
        let out = h
            .cmd()
            .args(["tape", "status", "--drive", "lto9"])
            .output()
            .unwrap();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("in use by pid"), "{err}");
            taken = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(taken, "the drive never showed as busy");
}

#[test]
fn configuration_errors_name_file_key_and_choices() {
    let h = Home::new();
    fs::write(
        h.config(),
        "[[drive]]\nname = \"lto9\"\ndevice = \"/dev/nst0\"\nblok_size = \"1MiB\"\n",
    )
    .unwrap();
    h.run(&["config"])
        .code(2)
        .stderr(predicate::str::contains("config.toml"))
        .stderr(predicate::str::contains("blok_size"))
        .stderr(predicate::str::contains("block_size"));
    fs::write(h.config(), "[logging]\nrotation = \"weekly\"\n").unwrap();
    h.run(&["config"])
        .code(2)
        .stderr(predicate::str::contains("logging.rotation"))
        .stderr(predicate::str::contains("daily, hourly, never"));
}

#[test]
fn config_prints_the_effective_configuration() {
    let h = Home::new();
    let out = h.stdout(&["config"]);
    assert!(out.contains(&format!("# configuration from {}", h.config().display())));
    assert!(out.contains(&h.vlib().display().to_string()), "{out}");
    assert!(out.contains("retain_days = 90"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&h.stdout(&["config", "--json"])).unwrap();
    assert_eq!(v["config"]["vlib"]["enabled"], true);
}

#[test]
fn changer_moves_loads_and_unloads() {
    let h = Home::new();
    h.init_fast();
    h.run(&["load", "2", "--drive", "lto6"])
        .code(2)
        .stderr(predicate::str::contains("cannot be loaded in drive lto6"));
    h.run(&["load", "5", "--drive", "lto6"])
        .success()
        .stdout(predicate::str::contains(
            "Loaded TD0005L6 from slot 5 into lto6",
        ));
    h.run(&["move", "3", "lto6"])
        .code(2)
        .stderr(predicate::str::contains(
            "drive lto6 is full (holds TD0005L6)",
        ));
    h.run(&["move", "6", "ie1"]).success();
    h.run(&["move", "ie1", "s6"]).success();
    h.run(&["move", "slot:7", "nowhere"])
        .code(2)
        .stderr(predicate::str::contains("not an element"));
    h.run(&["tape", "weof", "--drive", "lto6"]).success();
    h.run(&["unload", "--drive", "lto6"])
        .success()
        .stdout(predicate::str::contains(
            "Unloaded TD0005L6 from lto6 into slot 5",
        ));
    let v: serde_json::Value =
        serde_json::from_str(&h.stdout(&["vlib", "show", "--json"])).unwrap();
    assert_eq!(v["library"]["slots"][4], "TD0005L6");
    assert_eq!(
        v["library"]["drives"][1]["cartridge"],
        serde_json::Value::Null
    );
    let used = v["cartridges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["barcode"] == "TD0005L6")
        .unwrap()["filemarks"]
        .as_u64();
    assert_eq!(used, Some(1), "the filemark is on the cartridge");
}

#[test]
fn erase_refuses_to_destroy_data_without_force() {
    let h = Home::new();
    h.init_fast();
    h.run(&["load", "1", "--drive", "lto9"]).success();
    h.run(&["tape", "weof", "2", "--drive", "lto9"]).success();
    h.run(&["tape", "rewind", "--drive", "lto9"]).success();
    h.run(&["tape", "erase", "--drive", "lto9"])
        .code(2)
        .stderr(predicate::str::contains("add --force"));
    h.run(&["tape", "erase", "--force", "--drive", "lto9"])
        .success();
    h.run(&["tape", "eod", "--drive", "lto9"]).success();
    assert_eq!(
        h.stdout(&["tape", "tell", "--drive", "lto9"]),
        "At block 0.\n"
    );
}

#[test]
fn vlib_init_refuses_an_existing_library_and_bad_options() {
    let h = Home::new();
    h.init_fast();
    h.run(&["vlib", "init"])
        .code(2)
        .stderr(predicate::str::contains("already exists"));
    let dir = h.path().join("other");
    let dir = dir.to_str().unwrap();
    h.run(&["vlib", "init", "--dir", dir, "--drives", "lto42"])
        .code(2)
        .stderr(predicate::str::contains("unknown drive model `lto42`"));
    h.run(&[
        "vlib",
        "init",
        "--dir",
        dir,
        "--drives",
        "a=LTO-9,b=LTO-9",
        "--slots",
        "3",
        "--capacity",
        "64MiB",
    ])
    .success()
    .stdout(predicate::str::contains(
        "2 drives (a LTO-9, b LTO-9), 3 slots",
    ));
    let out = h.stdout(&["vlib", "show", "--dir", dir]);
    assert!(out.contains("TD0003L9") && out.contains("64 MiB"), "{out}");
}

#[test]
fn usage_errors_exit_2_and_help_explains() {
    let h = Home::new();
    h.run(&["tape", "fsf", "0"]).code(2);
    h.run(&["frobnicate"]).code(2);
    h.run(&["tape", "--help"])
        .success()
        .stdout(predicate::str::contains("logical block number"));
}

#[test]
fn every_run_leaves_a_log_file() {
    let h = Home::new();
    h.init_fast();
    h.run(&["-v", "tape", "status"]).success();
    let logs: Vec<_> = fs::read_dir(h.path().join("logs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(logs.iter().any(|n| n.starts_with("tapedeck")), "{logs:?}");
}
