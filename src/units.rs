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

/// Parses a memory-buffer size: as [`parse_size`], except that a bare number means GiB, as
/// pytp's `--memory_buffer 16` did. The command line (`--memory-buffer`) and the
/// configuration (`[buffer] size`) both read sizes through this, so `3` means 3 GiB in both.
pub fn parse_buffer_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    match t.parse::<f64>() {
        Ok(gib) if gib.is_finite() && gib > 0.0 => Ok((gib * (1u64 << 30) as f64) as u64),
        Ok(_) => Err(format!("`{text}` is not a buffer size: it must be above 0")),
        Err(_) => parse_size(t),
    }
}

/// Parses a retention period into whole days: `30`, `30d`, `5w`, `6m` (a month counts 31
/// days and a year 366, so a period never protects for less than the calendar would).
pub fn parse_days(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (number, per) = match t.char_indices().last() {
        Some((i, 'd' | 'D')) => (&t[..i], 1),
        Some((i, 'w' | 'W')) => (&t[..i], 7),
        Some((i, 'm' | 'M')) => (&t[..i], 31),
        Some((i, 'y' | 'Y')) => (&t[..i], 366),
        _ => (t, 1),
    };
    number
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .and_then(|n| n.checked_mul(per))
        .ok_or_else(|| {
            format!("`{text}` is not a period: write a number of days, or e.g. 30d, 5w, 6m, 10y")
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

/// serde helper: an optional memory-buffer size (see [`parse_buffer_size`]): a number or
/// text, a bare number meaning GiB.
pub fn deserialize_opt_buffer_size<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }
    let text = match Option::<Raw>::deserialize(d)? {
        None => return Ok(None),
        Some(Raw::Number(n)) => n.to_string(),
        Some(Raw::Text(t)) => t,
    };
    parse_buffer_size(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
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
    fn a_bare_buffer_size_is_gib_everywhere() {
        assert_eq!(parse_buffer_size("3").unwrap(), 3 << 30);
        assert_eq!(parse_buffer_size("0.5").unwrap(), 512 << 20);
        assert_eq!(parse_buffer_size("1KiB").unwrap(), 1024);
        assert!(parse_buffer_size("0").is_err());
        #[derive(Deserialize)]
        struct Buffer {
            #[serde(default, deserialize_with = "deserialize_opt_buffer_size")]
            size: Option<u64>,
        }
        let parsed = |t: &str| toml::from_str::<Buffer>(t).map(|b| b.size);
        assert_eq!(parsed(r#"size = "3""#).unwrap(), Some(3 << 30));
        assert_eq!(parsed("size = 3").unwrap(), Some(3 << 30));
        assert_eq!(parsed(r#"size = "512MiB""#).unwrap(), Some(512 << 20));
        assert_eq!(parsed("").unwrap(), None);
    }

    #[test]
    fn retention_periods_in_days() {
        assert_eq!(parse_days("30").unwrap(), 30);
        assert_eq!(parse_days("30d").unwrap(), 30);
        assert_eq!(parse_days("5w").unwrap(), 35);
        assert_eq!(parse_days("6m").unwrap(), 186);
        assert_eq!(parse_days("1y").unwrap(), 366);
        assert!(parse_days("-1").is_err());
        assert!(parse_days("w").is_err());
        assert!(parse_days("5 weeks").unwrap_err().contains("5w"));
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
