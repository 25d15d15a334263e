//! `resource.Quantity`: exact values ("100m", "1.5Gi", "2e3") and Go's canonical text, which
//! quota and limit messages print ("requests.cpu=1500m", "memory=1536Mi").

use std::cmp::Ordering;
use std::fmt;

const NANO: i128 = 1_000_000_000;

/// How a quantity is written, which decides how sums print (Go keeps the first operand's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// "100m", "2k", "5M".
    DecimalSI,
    /// "8Ki", "1Gi".
    BinarySI,
    /// "2e3".
    DecimalExponent,
}

/// A quantity, held exactly in billionths.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

const BINARY: [(&str, u32); 6] = [
    ("Ki", 1),
    ("Mi", 2),
    ("Gi", 3),
    ("Ti", 4),
    ("Pi", 5),
    ("Ei", 6),
];
const DECIMAL: [(&str, i32); 9] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

impl Quantity {
    /// A whole number of units, such as an object count.
    pub fn from_int(n: i64) -> Quantity {
        Quantity {
            nanos: i128::from(n) * NANO,
            format: Format::DecimalSI,
        }
    }

    pub fn zero() -> Quantity {
        Quantity::from_int(0)
    }

    /// Parses what `resource.ParseQuantity` accepts; `None` for anything else. Precision below
    /// a billionth is rounded up, as Go does.
    pub fn parse(text: &str) -> Option<Quantity> {
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || "+-.".contains(c)))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let (format, scale) = if suffix.is_empty() {
            (Format::DecimalSI, Scale::Ten(0))
        } else if let Some((_, p)) = BINARY.iter().find(|(s, _)| *s == suffix) {
            (Format::BinarySI, Scale::Binary(*p))
        } else if let Some((_, e)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
            (Format::DecimalSI, Scale::Ten(*e))
        } else {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (Format::DecimalExponent, Scale::Ten(exp.parse().ok()?))
        };
        let (negative, unsigned) = match number.as_bytes().first() {
            Some(b'-') => (true, &number[1..]),
            Some(b'+') => (false, &number[1..]),
            _ => (false, number),
        };
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        if (whole.is_empty() && fraction.is_empty())
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
            || whole.len() + fraction.len() > 30
        {
            return None;
        }
        // digits × 10^(-fraction length) × scale, in billionths, rounded up.
        let digits: i128 = format!("{whole}{fraction}").parse().ok()?;
        let mut numerator = digits.checked_mul(NANO)?;
        let mut denominator: i128 = 10i128.checked_pow(fraction.len() as u32)?;
        match scale {
            Scale::Binary(p) => numerator = numerator.checked_mul(1i128 << (10 * p))?,
            Scale::Ten(e) if e >= 0 => {
                numerator = numerator.checked_mul(10i128.checked_pow(e as u32)?)?
            }
            Scale::Ten(e) => {
                denominator = denominator.checked_mul(10i128.checked_pow(e.unsigned_abs())?)?
            }
        }
        let nanos = (numerator + denominator - 1) / denominator;
        Some(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }

    /// The value in thousandths, rounded up (what Go's `MilliValue` gives).
    pub fn milli(&self) -> i128 {
        self.nanos.div_euclid(1_000_000) + i128::from(self.nanos.rem_euclid(1_000_000) != 0)
    }

    pub fn as_f64(&self) -> f64 {
        self.nanos as f64 / NANO as f64
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The sum, written the way `self` is.
    pub fn plus(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos + other.nanos,
            format: self.format,
        }
    }

    /// The difference, written the way `self` is.
    pub fn minus(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos - other.nanos,
            format: self.format,
        }
    }
}

enum Scale {
    Binary(u32),
    Ten(i32),
}

/// Go's canonical form: the largest exponent (a multiple of 3, or of 1024 for binary
/// quantities that are whole and at least 1Ki) that keeps the mantissa whole.
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.nanos % NANO == 0;
        if self.format == Format::BinarySI && whole && self.nanos.abs() >= 1024 * NANO {
            let mut mantissa = self.nanos / NANO;
            let mut power = 0;
            while power < 6 && mantissa % 1024 == 0 {
                mantissa /= 1024;
                power += 1;
            }
            let suffix = match power {
                0 => "",
                p => BINARY[p - 1].0,
            };
            return write!(f, "{mantissa}{suffix}");
        }
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let mut mantissa = self.nanos;
        let mut exponent = -9;
        while mantissa % 1000 == 0 && exponent < 18 {
            mantissa /= 1000;
            exponent += 3;
        }
        match self.format {
            Format::DecimalExponent if exponent == 0 => write!(f, "{mantissa}"),
            Format::DecimalExponent => write!(f, "{mantissa}e{exponent}"),
            _ => {
                let suffix = DECIMAL
                    .iter()
                    .find(|(_, e)| *e == exponent)
                    .map_or("", |(s, _)| s);
                write!(f, "{mantissa}{suffix}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|| panic!("{s} does not parse"))
    }

    #[test]
    fn canonical_text_is_gos() {
        for (input, canonical) in [
            ("100m", "100m"),
            ("0.1", "100m"),
            ("1500m", "1500m"),
            ("1.5", "1500m"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("2000000", "2M"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1.5Gi", "1536Mi"),
            ("1000Mi", "1000Mi"),
            ("512", "512"),
            ("0", "0"),
            ("2e3", "2e3"),
            ("1e6", "1e6"),
            ("5", "5"),
            ("+5", "5"),
            ("-100m", "-100m"),
            ("0.5Ki", "512"),
        ] {
            assert_eq!(q(input).to_string(), canonical, "{input}");
        }
    }

    #[test]
    fn malformed_text_is_refused() {
        for bad in ["", "m", "1x", "1.2.3", "Gi", "1e", "1e+", "--1", "1 Gi"] {
            assert!(Quantity::parse(bad).is_none(), "{bad:?} parsed");
        }
    }

    #[test]
    fn arithmetic_is_exact_and_keeps_the_first_format() {
        let sum = q("1Gi").plus(q("512Mi"));
        assert_eq!(sum.to_string(), "1536Mi");
        assert_eq!(q("100m").plus(q("900m")).to_string(), "1");
        assert_eq!(q("1").minus(q("250m")).to_string(), "750m");
        assert!(q("1") > q("999m"));
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1n").milli(), 1);
        assert_eq!(q("1.5").milli(), 1500);
    }
}
