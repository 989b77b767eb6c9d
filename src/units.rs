//! Sizes as operators type and read them: `512KiB`, `4G`, `18TB` in, `512 KiB` out.

use serde::{Deserialize, Deserializer, Serializer};

/// Parses a size such as `512KiB`, `4G`, `2.5TB` or `1048576`. Units follow the usual
/// convention: `KB`/`MB`/`GB`/`TB` are powers of 1000, `KiB`/`MiB`/`GiB`/`TiB` and the
/// bare letters `K`/`M`/`G`/`T` are powers of 1024 (as `mbuffer -m 1G` and `mt` mean them).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let bare_binary = trimmed
        .strip_suffix(['k', 'K', 'm', 'M', 'g', 'G', 't', 'T'])
        .is_some_and(|n| !n.is_empty() && n.trim_end().ends_with(|c: char| c.is_ascii_digit()));
    let config = if bare_binary {
        parse_size::Config::new().with_binary()
    } else {
        parse_size::Config::new()
    };
    config.parse_size(trimmed).map_err(|e| {
        format!("`{text}` is not a size ({e}); write e.g. 512KiB, 4G, 18TB or a number of bytes")
    })
}

/// Formats bytes with binary units: `512 KiB`, `1.50 GiB`.
pub fn format_size(bytes: u64) -> String {
    humansize::format_size(bytes, humansize::BINARY)
}

/// Formats a rate in decimal megabytes per second, as drive data sheets quote them.
pub fn format_rate(bytes_per_second: f64) -> String {
    format!("{:.1} MB/s", bytes_per_second / 1e6)
}

/// serde helper: a size field that accepts `"512KiB"` or a number.
pub fn deserialize_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(t) => parse_size(&t).map_err(serde::de::Error::custom),
    }
}

/// serde helper: an optional size field.
pub fn deserialize_opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "deserialize_size")] u64);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

/// serde helper: writes a size as text (`"512 KiB"` reads back through [`parse_size`]).
pub fn serialize_size<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_size(*bytes).replace(' ', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_operators_type() {
        assert_eq!(parse_size("512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("512k").unwrap(), 512 * 1024);
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("18TB").unwrap(), 18_000_000_000_000);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size(" 2 MiB ").unwrap(), 2 << 20);
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for bytes in [512 * 1024u64, 18 << 30, 1 << 20, 4096] {
            let text = format_size(bytes).replace(' ', "");
            assert_eq!(parse_size(&text).unwrap(), bytes, "{text}");
        }
        assert_eq!(format_size(512 * 1024), "512 KiB");
    }
}
