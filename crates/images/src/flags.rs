//! Command-line flags the way agnhost's cobra/pflag reads them, and Go durations.

use std::collections::HashMap;
use std::time::Duration;

/// What a flag holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--name` alone means true.
    Bool,
    /// A value is required: `--name=v` or `--name v`.
    Value,
}

/// Parsed flags: the last value given for each name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flags(HashMap<String, String>);

/// A flag error, worded as pflag words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FlagError(pub String);

impl Flags {
    /// Parses `args` against `spec`; positional arguments are refused (agnhost's commands
    /// take none).
    pub fn parse(args: &[String], spec: &[(&str, Kind)]) -> Result<Flags, FlagError> {
        let mut values = HashMap::new();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                return Err(FlagError(format!(
                    "accepts at most 0 arg(s), received {}",
                    args.iter().filter(|a| !a.starts_with('-')).count()
                )));
            };
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (body, None),
            };
            let Some((_, kind)) = spec.iter().find(|(known, _)| *known == name) else {
                return Err(FlagError(format!("unknown flag: --{name}")));
            };
            let value = match (kind, inline) {
                (_, Some(value)) => value,
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Value, None) => rest
                    .next()
                    .cloned()
                    .ok_or_else(|| FlagError(format!("flag needs an argument: --{name}")))?,
            };
            if *kind == Kind::Bool {
                parse_bool(&value).ok_or_else(|| invalid(name, &value, "strconv.ParseBool"))?;
            }
            values.insert(name.to_string(), value);
        }
        Ok(Flags(values))
    }

    /// An integer flag, or `default` when absent.
    pub fn int(&self, name: &str, default: i64) -> Result<i64, FlagError> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| invalid(name, v, "strconv.ParseInt")),
        }
    }

    /// A boolean flag, or `default` when absent.
    pub fn bool(&self, name: &str, default: bool) -> bool {
        self.0
            .get(name)
            .and_then(|v| parse_bool(v))
            .unwrap_or(default)
    }

    /// A string flag, or `""` when absent.
    pub fn string(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }
}

fn invalid(name: &str, value: &str, func: &str) -> FlagError {
    FlagError(format!(
        "invalid argument {value:?} for \"--{name}\" flag: {func}: parsing {value:?}: invalid syntax"
    ))
}

/// Go's `strconv.ParseBool`.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `time.ParseDuration` ("1.5s", "300ms", "1h2m"); negative durations are zero here,
/// since every use (sleeps, shutdown timeouts) treats them so.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * nanos_per_unit;
    }
    Some(if negative {
        Duration::ZERO
    } else {
        Duration::from_nanos(total.round() as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[(&str, Kind)] = &[("http-port", Kind::Value), ("udp", Kind::Bool)];

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_pflag_forms() {
        let flags = Flags::parse(&strings(&["--http-port=9000", "--udp"]), SPEC).unwrap();
        assert_eq!(flags.int("http-port", 8080).unwrap(), 9000);
        assert!(flags.bool("udp", false));
        let flags = Flags::parse(&strings(&["--http-port", "81", "--udp=false"]), SPEC).unwrap();
        assert_eq!(flags.int("http-port", 8080).unwrap(), 81);
        assert!(!flags.bool("udp", true));
        let flags = Flags::parse(&[], SPEC).unwrap();
        assert_eq!(flags.int("http-port", 8080).unwrap(), 8080);
        assert_eq!(flags.string("http-port"), "");
    }

    #[test]
    fn refuses_what_pflag_refuses() {
        let err = Flags::parse(&strings(&["--nope=1"]), SPEC).unwrap_err();
        assert_eq!(err.0, "unknown flag: --nope");
        let err = Flags::parse(&strings(&["extra"]), SPEC).unwrap_err();
        assert_eq!(err.0, "accepts at most 0 arg(s), received 1");
        assert!(Flags::parse(&strings(&["--http-port"]), SPEC).is_err());
        assert!(Flags::parse(&strings(&["--udp=maybe"]), SPEC).is_err());
        let flags = Flags::parse(&strings(&["--http-port=x"]), SPEC).unwrap();
        let err = flags.int("http-port", 1).unwrap_err();
        assert!(
            err.0
                .starts_with("invalid argument \"x\" for \"--http-port\" flag"),
            "{err}"
        );
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("5s"), Some(ms(5000)));
        assert_eq!(parse_go_duration("1.5s"), Some(ms(1500)));
        assert_eq!(parse_go_duration("300ms"), Some(ms(300)));
        assert_eq!(parse_go_duration("1m30s"), Some(ms(90_000)));
        assert_eq!(parse_go_duration("2h"), Some(ms(7_200_000)));
        assert_eq!(parse_go_duration("10us"), Some(Duration::from_micros(10)));
        assert_eq!(parse_go_duration("-1s"), Some(Duration::ZERO));
        for bad in ["", "5", "s", "5x", "1..5s", "."] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }
}
