//! The deployment's currency. keygate counts prices and costs as integers of the currency's
//! minor unit (cents for EUR, yen for JPY) everywhere, the API included; a deployment names its
//! currency and that unit's exponent once (`KEYGATE_CURRENCY`, `KEYGATE_CURRENCY_EXPONENT`), and
//! the console and the billing export show amounts as money with them.

use serde::Serialize;

/// The most digits after the decimal point a currency's minor unit takes (ISO 4217 has 0 to 4).
pub const MAX_EXPONENT: u8 = 4;

/// A currency as ISO 4217 names it, with the exponent of its minor unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Currency {
    /// The ISO 4217 code: three capital letters (`EUR`).
    pub code: String,
    /// Digits after the decimal point of one major unit: 2 for EUR (7 minor units = 0.07).
    pub exponent: u8,
}

impl Default for Currency {
    fn default() -> Self {
        Self { code: "EUR".into(), exponent: 2 }
    }
}

/// The decimal places of a minor unit, as a setting gives them.
pub fn parse_exponent(value: &str) -> Result<u8, String> {
    value
        .parse()
        .ok()
        .filter(|e| *e <= MAX_EXPONENT)
        .ok_or_else(|| format!("'{value}' is not a number of decimal places from 0 to {MAX_EXPONENT}"))
}

impl Currency {
    /// A currency by its code, with a message saying what is wrong with it.
    pub fn new(code: &str, exponent: u8) -> Result<Self, String> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("'{code}' is not an ISO 4217 currency code (three capital letters, like EUR)"));
        }
        if exponent > MAX_EXPONENT {
            return Err(format!("{exponent} decimal places are more than a currency has ({MAX_EXPONENT} at most)"));
        }
        Ok(Self { code: code.to_owned(), exponent })
    }

    /// An amount of minor units in major units, as a decimal number without grouping: `0.07`,
    /// `-1.50`, `12` (exponent 0). Exact: integers, never floating point.
    pub fn amount(&self, minor: i64) -> String {
        let digits = minor.unsigned_abs().to_string();
        let sign = if minor < 0 { "-" } else { "" };
        let places = usize::from(self.exponent);
        if places == 0 {
            return format!("{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = places + 1);
        let (major, fraction) = padded.split_at(padded.len() - places);
        format!("{sign}{major}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_decimals_of_the_minor_unit() {
        let eur = Currency::default();
        assert_eq!(eur.amount(7), "0.07");
        assert_eq!(eur.amount(21), "0.21");
        assert_eq!(eur.amount(123_456), "1234.56");
        assert_eq!(eur.amount(0), "0.00");
        assert_eq!(eur.amount(-150), "-1.50");
        assert_eq!(Currency::new("JPY", 0).unwrap().amount(1200), "1200");
        assert_eq!(Currency::new("BHD", 3).unwrap().amount(5), "0.005");
        assert_eq!(eur.amount(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(Currency::new("eur", 2).unwrap_err().contains("ISO 4217"));
        assert!(Currency::new("EURO", 2).is_err());
        assert!(Currency::new("EUR", 5).is_err());
        assert!(parse_exponent("5").unwrap_err().contains("0 to 4"));
        assert!(parse_exponent("two").is_err());
        assert_eq!(parse_exponent("3"), Ok(3));
    }
}
