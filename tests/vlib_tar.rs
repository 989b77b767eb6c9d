//! The virtual library's on-disk contract: a tape file is a plain file holding exactly its
//! blocks, so GNU tar reads an archive written block by block through the drive.

use std::fs;
use std::process::Command;
use tapedeck::tape::{Changer, Element, ReadOutcome, TapeDrive, WriteOutcome};
use tapedeck::vlib::{InitOptions, Library};

const BLOCK: usize = 10240; // tar's default record: -b 20

#[test]
fn gnu_tar_reads_tape_files_written_through_the_drive() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.txt"), "first file\n").unwrap();
    fs::write(src.join("sub/b.bin"), vec![7u8; 100_000]).unwrap();
    let archive = Command::new("tar")
        .args(["-cf", "-", "-C"])
        .arg(&src)
        .arg(".")
        .output()
        .expect("GNU tar");
    assert!(archive.status.success());
    let archive = archive.stdout;
    assert_eq!(archive.len() % BLOCK, 0, "tar pads to whole records");

    let lib_dir = dir.path().join("vlib");
    let opts = InitOptions {
        time_scale: 0.0,
        ..InitOptions::default()
    };
    let lib = Library::init(&lib_dir, &opts).unwrap();
    lib.changer()
        .move_medium(Element::Slot(1), Element::Drive(0))
        .unwrap();
    let mut drive = lib.open_drive("lto9").unwrap();
    drive.set_block_size(BLOCK as u32).unwrap();
    drive.rewind().unwrap();
    // Tape file 0: a one-block label stand-in; tape file 1: the archive.
    drive.write_block(&vec![0u8; BLOCK]).unwrap();
    drive.write_filemarks(1, false).unwrap();
    for block in archive.chunks(BLOCK) {
        assert_eq!(drive.write_block(block).unwrap(), WriteOutcome::Written);
    }
    drive.write_filemarks(1, false).unwrap();
    let blocks = (archive.len() / BLOCK) as u64;
    assert_eq!(drive.position().unwrap(), 2 + blocks + 1);

    // Read back through the drive: LOCATE to object 2 is the archive's first block.
    drive.locate(2).unwrap();
    let mut back = Vec::new();
    let mut buf = vec![0u8; BLOCK];
    loop {
        match drive.read_block(&mut buf).unwrap() {
            ReadOutcome::Block(n) => back.extend_from_slice(&buf[..n]),
            ReadOutcome::Filemark => break,
            ReadOutcome::EndOfData => panic!("end of data before the filemark"),
        }
    }
    assert!(back == archive, "the drive reads back what it wrote");
    drop(drive);

    let tape_file = lib_dir.join("cartridges/TD0001L9/00001.tar");
    assert!(
        fs::read(&tape_file).unwrap() == archive,
        "00001.tar is exactly the blocks"
    );
    let list = Command::new("tar")
        .arg("-tf")
        .arg(&tape_file)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("./sub/b.bin") && list.contains("./a.txt"),
        "{list}"
    );
    let out = dir.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tape_file)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(fs::read(out.join("sub/b.bin")).unwrap(), vec![7u8; 100_000]);
}
