//! A second reading of a JSON body that did not deserialize, which goes on past each error so
//! the client learns about every invalid, missing or unknown field at once.
//!
//! serde stops at the first error. Here the body, already parsed into a [`Value`], is read
//! again through a deserializer that checks each value against the type the target asks for
//! (`deserialize_str`, `deserialize_u32`, ...) before handing it over: a value of the wrong type
//! is recorded under its path and replaced by a stand-in (`""`, `0`, `None`, an empty list), so
//! the reading continues. Unknown keys of a struct are recorded and skipped (every request wire
//! type denies unknown fields). A missing field is only known when the struct's own visitor
//! reports it, and then the reading is over; so it is read again with that field supplied as a
//! stand-in and recorded, until no new missing field appears. A type that rejects a value
//! itself (a `try_from`, an untagged enum) still ends the reading there, after recording why.
//!
//! The value produced is made of stand-ins wherever an error was recorded: it only serves to
//! run the handler's own checks on the other fields (see [`super::LenientJson`]), and is never
//! stored or answered.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, Visitor,
};
use serde_json::Value;
use vigia_domain::FieldError;

/// Readings of one body at most: each finds at least one more missing field.
const MAX_PASSES: usize = 64;

/// What a second reading found: the stand-in value, if the reading got to the end, and every
/// error recorded on the way (empty only if this reading disagrees with serde's).
pub(super) struct Recovered<T> {
    pub value: Option<T>,
    pub errors: Vec<FieldError>,
}

/// Reads `value` as a `T`, recording every error (see the module documentation).
pub(super) fn recover<T: DeserializeOwned>(value: &Value) -> Recovered<T> {
    let mut missing = BTreeSet::new();
    for _ in 0..MAX_PASSES {
        let state = State {
            errors: RefCell::new(Vec::new()),
            missing: &missing,
        };
        let result = T::deserialize(Recover {
            value,
            path: String::new(),
            silent: false,
            state: &state,
        });
        let mut errors = state.errors.into_inner();
        match result {
            Ok(value) => {
                return Recovered {
                    value: Some(value),
                    errors,
                };
            }
            Err(error) => {
                let path = error.path.unwrap_or_default();
                if let Some(field) = error.missing
                    && missing.insert(child(&path, field))
                {
                    continue;
                }
                let field = if path.is_empty() { "body".into() } else { path };
                if !errors.iter().any(|e| e.field == field) {
                    errors.push(FieldError::new(field, error.message));
                }
                return Recovered {
                    value: None,
                    errors,
                };
            }
        }
    }
    Recovered {
        value: None,
        errors: vec![FieldError::new("body", "has too many missing fields")],
    }
}

/// What one reading shares: the errors so far and the fields known to be missing.
struct State<'m> {
    errors: RefCell<Vec<FieldError>>,
    missing: &'m BTreeSet<String>,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// An error that ends a reading, with where it happened and, for a missing field, its name.
#[derive(Debug)]
struct Error {
    path: Option<String>,
    message: String,
    missing: Option<&'static str>,
}

impl Error {
    /// Places the error at `path` unless a deeper value already did.
    fn at(mut self, path: &str) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_owned());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self {
            path: None,
            message: message.to_string(),
            missing: None,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self {
            path: None,
            message: format!("missing field `{field}`"),
            missing: Some(field),
        }
    }
}

fn from_json(error: serde_json::Error) -> Error {
    de::Error::custom(super::clean_serde_message(&error.to_string()))
}

/// Where a stand-in is read from: `null` read silently.
static NULL: Value = Value::Null;

/// One value being read. `silent`: a stand-in for a missing or invalid value, whose reading
/// records nothing (the error is already recorded) and answers every request with an empty value.
struct Recover<'a> {
    value: &'a Value,
    path: String,
    silent: bool,
    state: &'a State<'a>,
}

impl<'a> Recover<'a> {
    fn record(&self, message: String) {
        let field = if self.path.is_empty() {
            "body".to_owned()
        } else {
            self.path.clone()
        };
        if !self.silent {
            self.state
                .errors
                .borrow_mut()
                .push(FieldError::new(field, message));
        }
    }

    fn invalid_type(&self, expected: &str) {
        self.record(format!(
            "invalid type: {}, expected {expected}",
            unexpected(self.value)
        ));
    }

    /// An integer that fits `[min, max]`, or the error recorded and `None`.
    fn integer(&self, min: i128, max: i128, expected: &str) -> Option<i128> {
        let n = match self.value {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from)),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.record(format!("invalid value: integer `{n}`, expected {expected}"));
                None
            }
            None => {
                self.invalid_type(expected);
                None
            }
        }
    }
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Other("null"),
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Unexpected::Unsigned(u),
            (_, Some(i), _) => Unexpected::Signed(i),
            (_, _, Some(f)) => Unexpected::Float(f),
            _ => Unexpected::Other("number"),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

macro_rules! integer {
    ($method:ident, $ty:ty, $visit:ident, $wide:ty) => {
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            let n = if self.silent {
                None
            } else {
                self.integer(
                    i128::from(<$ty>::MIN),
                    i128::from(<$ty>::MAX),
                    stringify!($ty),
                )
            };
            // In range by the check above; the stand-in is 0.
            visitor.$visit(n.and_then(|n| <$wide>::try_from(n).ok()).unwrap_or(0))
        }
    };
}

impl<'a> Deserializer<'a> for Recover<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.silent {
            return visitor.visit_unit();
        }
        self.value.deserialize_any(visitor).map_err(from_json)
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Bool(b) => visitor.visit_bool(*b),
            _ => {
                self.invalid_type("a boolean");
                visitor.visit_bool(false)
            }
        }
    }

    integer!(deserialize_i8, i8, visit_i64, i64);
    integer!(deserialize_i16, i16, visit_i64, i64);
    integer!(deserialize_i32, i32, visit_i64, i64);
    integer!(deserialize_i64, i64, visit_i64, i64);
    integer!(deserialize_u8, u8, visit_u64, u64);
    integer!(deserialize_u16, u16, visit_u64, u64);
    integer!(deserialize_u32, u32, visit_u64, u64);
    integer!(deserialize_u64, u64, visit_u64, u64);

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Number(n) => visitor.visit_f64(n.as_f64().unwrap_or_default()),
            _ => {
                self.invalid_type("a number");
                visitor.visit_f64(0.0)
            }
        }
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) if s.chars().count() == 1 => {
                self.value.deserialize_char(visitor).map_err(from_json)
            }
            _ => {
                self.invalid_type("a character");
                visitor.visit_char(' ')
            }
        }
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => visitor.visit_str(s),
            _ => {
                self.invalid_type("a string");
                visitor.visit_str("")
            }
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.value.deserialize_bytes(visitor).map_err(from_json)
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.value.deserialize_byte_buf(visitor).map_err(from_json)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        if !self.value.is_null() {
            self.invalid_type("null");
        }
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let items: &[Value] = match self.value {
            Value::Array(items) => items,
            _ => {
                self.invalid_type("a list");
                &[]
            }
        };
        let path = self.path.clone();
        visitor
            .visit_seq(Items {
                items: items.iter().enumerate(),
                path: self.path,
                state: self.state,
            })
            .map_err(|e| e.at(&path))
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Object(_) => self.value.deserialize_map(visitor).map_err(from_json),
            _ => {
                self.invalid_type("an object");
                let empty: de::value::MapDeserializer<'a, _, Error> =
                    de::value::MapDeserializer::new(std::iter::empty::<(&str, &str)>());
                visitor.visit_map(empty)
            }
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let object = match self.value {
            Value::Object(object) => Some(object),
            _ => {
                self.invalid_type(&format!("struct {name}"));
                None
            }
        };
        // A struct that is itself a stand-in gets every field; otherwise the fields sent and
        // those found missing by an earlier reading. Fields in the order they are declared.
        let whole_stand_in = self.silent || object.is_none();
        let mut entries = Vec::with_capacity(fields.len());
        for &field in fields {
            match object.and_then(|o| o.get(field)) {
                Some(value) => entries.push((field, Entry::Sent(value))),
                None if whole_stand_in => entries.push((field, Entry::StandIn)),
                None if self.state.missing.contains(&child(&self.path, field)) => {
                    entries.push((field, Entry::Missing));
                }
                None => {}
            }
        }
        let unknown = object
            .into_iter()
            .flatten()
            .map(|(key, _)| key.as_str())
            .filter(|key| !fields.contains(key))
            .collect();
        let path = self.path.clone();
        visitor
            .visit_map(Fields {
                entries: entries.into_iter(),
                pending: None,
                unknown,
                fields,
                path: self.path,
                state: self.state,
            })
            .map_err(|e| e.at(&path))
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let first = variants.first().copied().unwrap_or_default();
        match self.value {
            _ if self.silent => visitor.visit_enum(first.into_deserializer()),
            Value::String(s) if variants.contains(&s.as_str()) => {
                visitor.visit_enum(s.as_str().into_deserializer())
            }
            Value::String(s) => {
                self.record(format!(
                    "unknown variant `{s}`, expected one of {}",
                    variants
                        .iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                visitor.visit_enum(first.into_deserializer())
            }
            Value::Object(o) if o.len() == 1 => self
                .value
                .deserialize_enum(name, variants, visitor)
                .map_err(from_json),
            _ => {
                self.invalid_type(&format!("enum {name}"));
                visitor.visit_enum(first.into_deserializer())
            }
        }
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// The elements of a list, each read on its own path (`tags[2]`).
struct Items<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Value>>,
    path: String,
    state: &'a State<'a>,
}

impl<'a> SeqAccess<'a> for Items<'a> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some((index, value)) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{index}]", self.path);
        seed.deserialize(Recover {
            value,
            path: path.clone(),
            silent: false,
            state: self.state,
        })
        .map(Some)
        .map_err(|e| e.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// One field of a struct as it is read.
#[derive(Clone, Copy)]
enum Entry<'a> {
    Sent(&'a Value),
    /// Missing, and required (found by an earlier reading): recorded, then a stand-in.
    Missing,
    /// The whole struct is a stand-in: nothing to record.
    StandIn,
}

/// A struct's known fields, then its unknown keys, recorded and skipped.
struct Fields<'a> {
    entries: std::vec::IntoIter<(&'static str, Entry<'a>)>,
    pending: Option<(&'static str, Entry<'a>)>,
    unknown: Vec<&'a str>,
    fields: &'static [&'static str],
    path: String,
    state: &'a State<'a>,
}

impl<'a> Fields<'a> {
    fn record(&self, field: String, message: String) {
        self.state
            .errors
            .borrow_mut()
            .push(FieldError::new(field, message));
    }
}

impl<'a> MapAccess<'a> for Fields<'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, entry)) = self.entries.next() else {
            let expected = self
                .fields
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ");
            for key in std::mem::take(&mut self.unknown) {
                self.record(
                    child(&self.path, key),
                    format!("unknown field `{key}`, expected one of {expected}"),
                );
            }
            return Ok(None);
        };
        self.pending = Some((key, entry));
        seed.deserialize(IntoDeserializer::<Error>::into_deserializer(key))
            .map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'a>>(&mut self, seed: T) -> Result<T::Value, Error> {
        let (key, entry) = self
            .pending
            .take()
            .ok_or_else(|| de::Error::custom("a value was asked for before its key"))?;
        let path = child(&self.path, key);
        if let Entry::Missing = entry {
            self.record(path.clone(), "is required".to_owned());
        }
        let (value, silent) = match entry {
            Entry::Sent(value) => (value, false),
            Entry::Missing | Entry::StandIn => (&NULL, true),
        };
        seed.deserialize(Recover {
            value,
            path: path.clone(),
            silent,
            state: self.state,
        })
        .map_err(|e| e.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
