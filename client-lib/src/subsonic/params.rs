//! A request's parameters: the query string and, for a form `POST`, the body (the formPost
//! extension), in order, names repeated where a list is meant (`id=1&id=2`).

use super::response::{ErrorCode, Failure};

/// Parameters read at most (a playlist update names its songs one by one).
pub const PARAMS_MAX: usize = 2_000;
/// The longest form body read.
pub const FORM_BYTES_MAX: usize = 256 * 1024;
/// The longest value kept.
pub const VALUE_CHARS_MAX: usize = 4_096;

/// Parameters by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parameters from a query string and a form body (either may be empty); a clear failure
    /// for too many or too long.
    pub fn parse(query: &str, form: &[u8]) -> Result<Self, Failure> {
        if form.len() > FORM_BYTES_MAX {
            return Err(Failure::generic(format!(
                "form body over {FORM_BYTES_MAX} bytes"
            )));
        }
        let mut pairs = Vec::new();
        for (name, value) in
            form_urlencoded::parse(query.as_bytes()).chain(form_urlencoded::parse(form))
        {
            if pairs.len() == PARAMS_MAX {
                return Err(Failure::generic(format!(
                    "more than {PARAMS_MAX} parameters"
                )));
            }
            if value.chars().count() > VALUE_CHARS_MAX {
                return Err(Failure::generic(format!(
                    "parameter {name} is over {VALUE_CHARS_MAX} characters"
                )));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self(pairs))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// The value of `name`, or code 10.
    pub fn required(&self, name: &str) -> Result<&str, Failure> {
        self.get(name).ok_or_else(|| Failure::missing(name))
    }

    /// `name` as a whole number within `range`, `None` when absent; code 0 when malformed.
    pub fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, Failure> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let value: i64 = text.trim().parse().map_err(|_| {
            Failure::new(
                ErrorCode::Generic,
                format!("parameter {name} is not a whole number"),
            )
        })?;
        if !range.contains(&value) {
            return Err(Failure::generic(format!(
                "parameter {name} is outside {}..={}",
                range.start(),
                range.end()
            )));
        }
        Ok(Some(value))
    }

    /// `name` as seconds (whole or decimal, at most `max_s`) in milliseconds, `None` when
    /// absent; code 0 when malformed.
    pub fn seconds_ms(&self, name: &str, max_s: u64) -> Result<Option<u64>, Failure> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let seconds: f64 = text
            .trim()
            .parse()
            .ok()
            .filter(|seconds: &f64| seconds.is_finite() && *seconds >= 0.0)
            .ok_or_else(|| {
                Failure::generic(format!("parameter {name} is not a number of seconds"))
            })?;
        if seconds > max_s as f64 {
            return Err(Failure::generic(format!(
                "parameter {name} is more than {max_s} seconds"
            )));
        }
        Ok(Some((seconds * 1000.0).round() as u64))
    }

    /// `name` as a boolean (`true`/`false`, `1`/`0`); absent is `None`.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, Failure> {
        match self.get(name).map(str::trim) {
            None => Ok(None),
            Some(value) if value.eq_ignore_ascii_case("true") || value == "1" => Ok(Some(true)),
            Some(value) if value.eq_ignore_ascii_case("false") || value == "0" => Ok(Some(false)),
            Some(_) => Err(Failure::generic(format!(
                "parameter {name} is not true or false"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_form_together_in_order() {
        let params = Params::parse("u=me&id=1&f=json", b"id=2&id=3&name=A%20B+C").unwrap();
        assert_eq!(params.get("u"), Some("me"));
        assert_eq!(params.all("id"), ["1", "2", "3"]);
        assert_eq!(params.get("name"), Some("A B C"));
        assert_eq!(
            params.required("x").unwrap_err().code,
            ErrorCode::MissingParameter
        );
        let seconds = Params::parse("a=95&b=1.25&c=-1&d=NaN&e=inf&f=90000", b"").unwrap();
        assert_eq!(seconds.seconds_ms("a", 86_400).unwrap(), Some(95_000));
        assert_eq!(seconds.seconds_ms("b", 86_400).unwrap(), Some(1_250));
        assert_eq!(seconds.seconds_ms("z", 86_400).unwrap(), None);
        for bad in ["c", "d", "e", "f"] {
            assert_eq!(
                seconds.seconds_ms(bad, 86_400).unwrap_err().code,
                ErrorCode::Generic
            );
        }
        let numbers = Params::parse("size=500&offset=-1&bad=x&t=true&z=0", b"").unwrap();
        assert_eq!(numbers.number("size", 0..=500).unwrap(), Some(500));
        assert!(numbers.number("offset", 0..=10).is_err());
        assert!(numbers.number("bad", 0..=10).is_err());
        assert_eq!(numbers.number("none", 0..=10).unwrap(), None);
        assert_eq!(numbers.flag("t").unwrap(), Some(true));
        assert_eq!(numbers.flag("z").unwrap(), Some(false));
        assert!(numbers.flag("bad").is_err());
    }

    #[test]
    fn too_much_is_refused() {
        let many = "a=1&".repeat(PARAMS_MAX + 1);
        assert!(Params::parse(&many, b"").is_err());
        let long = format!("a={}", "x".repeat(VALUE_CHARS_MAX + 1));
        assert!(Params::parse(&long, b"").is_err());
        assert!(Params::parse("", &vec![b'a'; FORM_BYTES_MAX + 1]).is_err());
        // Broken escapes read as text, never a panic.
        assert_eq!(Params::parse("a=%zz%", b"").unwrap().get("a"), Some("%zz%"));
    }
}
