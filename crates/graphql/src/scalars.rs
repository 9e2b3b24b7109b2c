//! The contract's custom scalars: `DateTime`, `Date` and `IMEI`.
//!
//! Own newtypes rather than async-graphql's chrono scalars, because the contract fixes
//! the output shape (UTC, `Z`, milliseconds) and the input checks (IMEI Luhn digit),
//! and because input failures must carry `extensions.code = BAD_USER_INPUT`.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use devicegraph_upstream::Imei;

use crate::error::Code;

/// An input value refused with the contract's `BAD_USER_INPUT` code.
fn refuse<T: async_graphql::InputType>(message: impl std::fmt::Display) -> InputValueError<T> {
    InputValueError::custom(message).with_extension("code", Code::BadUserInput.as_str())
}

/// An RFC 3339 instant in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct GqlDateTime(pub(crate) DateTime<Utc>);

/// RFC 3339 instant, always rendered in UTC with a Z suffix and millisecond precision,
/// e.g. 2022-01-26T03:45:01.608Z. Input accepts any RFC 3339 instant (any offset).
#[Scalar(
    name = "DateTime",
    specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339"
)]
impl ScalarType for GqlDateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => DateTime::parse_from_rfc3339(s)
                .map(|t| Self(t.with_timezone(&Utc)))
                .map_err(|e| refuse(format!("{s:?} is not an RFC 3339 instant: {e}"))),
            other => Err(refuse(format!("expected an RFC 3339 string, got {other}"))),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(_))
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct GqlDate(pub(crate) NaiveDate);

/// Calendar date, YYYY-MM-DD.
#[Scalar(name = "Date")]
impl ScalarType for GqlDate {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(Self)
                .map_err(|e| refuse(format!("{s:?} is not a YYYY-MM-DD date: {e}"))),
            other => Err(refuse(format!("expected a YYYY-MM-DD string, got {other}"))),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(_))
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}

/// An IMEI. Input is checked (15 digits, Luhn) when parsed; output renders what the
/// upstream sent, so a device the upstream lists is never hidden by our own check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GqlImei(String);

impl GqlImei {
    pub(crate) fn output(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The checked identifier. Inputs were validated by `parse`; the check is repeated
    /// (cheaply) so the type never hands out an unchecked IMEI.
    pub(crate) fn to_imei(&self) -> async_graphql::Result<Imei> {
        self.0
            .parse::<Imei>()
            .map_err(|e| crate::error::bad_input(e.to_string()))
    }
}

/// 15 decimal digits with a valid Luhn check digit, e.g. 490154203237518.
#[Scalar(name = "IMEI")]
impl ScalarType for GqlImei {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => match s.parse::<Imei>() {
                Ok(i) => Ok(Self(i.as_str().to_owned())),
                Err(e) => Err(refuse(e)),
            },
            other => Err(refuse(format!(
                "expected an IMEI string of 15 digits, got {other}"
            ))),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(_))
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_renders_utc_millis_z() {
        let t = GqlDateTime::parse(Value::String("2015-12-17T13:56:13-05:00".into()));
        let Ok(t) = t else { panic!("parse failed") };
        assert_eq!(
            t.to_value(),
            Value::String("2015-12-17T18:56:13.000Z".into())
        );
        let t = GqlDateTime::parse(Value::String("2022-01-26T03:45:01.608Z".into()));
        let Ok(t) = t else { panic!("parse failed") };
        assert_eq!(
            t.to_value(),
            Value::String("2022-01-26T03:45:01.608Z".into())
        );
        assert!(GqlDateTime::parse(Value::String("2022-01-26".into())).is_err());
    }

    #[test]
    fn imei_input_is_checked_and_coded() {
        assert!(GqlImei::parse(Value::String("490154203237518".into())).is_ok());
        let Err(e) = GqlImei::parse(Value::String("490154203237519".into())) else {
            panic!("accepted a bad Luhn digit");
        };
        let e = e.into_server_error(async_graphql::Pos::default());
        assert!(e.message.contains("490154203237519"), "{}", e.message);
        assert_eq!(crate::error::code_of(&e), Some(Code::BadUserInput));
    }

    #[test]
    fn date_round_trips() {
        let Ok(d) = GqlDate::parse(Value::String("2022-01-25".into())) else {
            panic!("parse failed")
        };
        assert_eq!(d.to_value(), Value::String("2022-01-25".into()));
        assert!(GqlDate::parse(Value::String("25/01/2022".into())).is_err());
    }
}
