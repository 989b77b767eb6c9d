//! Which LTO cartridges a drive can read and write, and how a cartridge's generation is
//! known (its barcode's media suffix, or the media a label recorded). The one place these
//! rules are written down: allocation, tape-change candidates, restore and verify, and the
//! virtual library all ask here.
//!
//! LTO-5 to LTO-7 write their own generation and the one before, and read two back;
//! LTO-8 and LTO-9 read and write their own generation and the one before.

/// Whether a drive of generation `drive` can write a cartridge of generation `media`.
pub fn writes(drive: u8, media: u8) -> bool {
    media == drive || media + 1 == drive
}

/// Whether a drive of generation `drive` can read a cartridge of generation `media`.
pub fn reads(drive: u8, media: u8) -> bool {
    let back = if drive >= 8 { 1 } else { 2 };
    media <= drive && media + back >= drive
}

/// Whether a drive of generation `drive` may take a cartridge of generation `media` for
/// writing (`write`) or reading. A generation not known on either side is let through: the
/// drive itself has the last word.
pub fn may_take(drive: Option<u8>, media: Option<u8>, write: bool) -> bool {
    match (drive, media) {
        (Some(d), Some(m)) if write => writes(d, m),
        (Some(d), Some(m)) => reads(d, m),
        _ => true,
    }
}

/// The generation a barcode's media suffix names (`TD0001L9` -> 9).
pub fn generation_from_barcode(barcode: &str) -> Option<u8> {
    let suffix = barcode.get(barcode.len().checked_sub(2)?..)?;
    let mut chars = suffix.chars();
    if !matches!(chars.next(), Some('L' | 'l')) {
        return None;
    }
    chars.next()?.to_digit(10).map(|d| d as u8)
}

/// The generation a media name gives (`LTO-6`, `lto6`, `LTO 6` -> 6).
pub fn generation_from_media(media: &str) -> Option<u8> {
    let key = media.to_ascii_uppercase().replace(['-', '_', ' '], "");
    key.strip_prefix("LTO")?.parse().ok()
}

/// A cartridge's generation: from the media its label recorded, else its barcode.
pub fn cartridge_generation(media: Option<&str>, barcode: Option<&str>) -> Option<u8> {
    media
        .and_then(generation_from_media)
        .or_else(|| barcode.and_then(generation_from_barcode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lto_rules() {
        // LTO-5..7: write own and one back, read two back.
        for d in 5..=7u8 {
            assert!(writes(d, d) && writes(d, d - 1) && !writes(d, d - 2));
            assert!(reads(d, d) && reads(d, d - 1) && reads(d, d - 2) && !reads(d, d - 3));
            assert!(!writes(d, d + 1) && !reads(d, d + 1));
        }
        // LTO-8 and 9: read and write own and one back only.
        for d in 8..=9u8 {
            assert!(writes(d, d) && writes(d, d - 1) && !writes(d, d - 2));
            assert!(reads(d, d) && reads(d, d - 1) && !reads(d, d - 2));
        }
        assert!(!writes(6, 9) && !reads(6, 9) && !reads(9, 6));
    }

    #[test]
    fn generations_from_barcodes_and_media() {
        assert_eq!(generation_from_barcode("TD0001L9"), Some(9));
        assert_eq!(generation_from_barcode("ABC123L6"), Some(6));
        assert_eq!(generation_from_barcode("CLN001CU"), None);
        assert_eq!(generation_from_barcode("L"), None);
        assert_eq!(generation_from_media("LTO-6"), Some(6));
        assert_eq!(cartridge_generation(None, Some("X0001L8")), Some(8));
        assert_eq!(
            cartridge_generation(Some("LTO-7"), Some("X0001L8")),
            Some(7)
        );
    }
}
