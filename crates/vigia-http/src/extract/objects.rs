//! JSON objects only where the API's schema says object.
//!
//! serde's derived structs also accept a JSON array, its items taken as the fields in order:
//! `[true]` would read as `{"enabled": true}`. The OpenAPI document promises objects, so a
//! request body, and every struct nested in one, is read through [`ObjectsOnly`], which refuses
//! the array form with the same 422 as any other value of the wrong type.
//!
//! The top of a body is wrapped by the JSON extractors. A struct nested in a body implements
//! `Deserialize` with [`objects_only!`], over serde's own derive, kept under the type with
//! `#[serde(remote = "Self")]`.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};

/// A deserializer whose structs accept objects only (see the module documentation).
pub struct ObjectsOnly<D>(pub D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectsOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct(name, fields, NoSequence(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// A struct's visitor that takes a map and nothing else: every other `visit_*` keeps serde's
/// default, an "invalid type" error naming what the struct expected.
struct NoSequence<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for NoSequence<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(map)
    }
}

/// Implements `Deserialize` for wire types nested in request bodies, through [`ObjectsOnly`].
/// Each type derives `Deserialize` with `#[serde(remote = "Self")]`, which turns serde's derive
/// into an inherent `deserialize` that this implementation calls.
macro_rules! objects_only {
    ($($ty:ty),+ $(,)?) => {$(
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                <$ty>::deserialize($crate::extract::ObjectsOnly(deserializer))
            }
        }
    )+};
}
pub(crate) use objects_only;

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::ObjectsOnly;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(remote = "Self", deny_unknown_fields)]
    struct Point {
        lat: f64,
        lon: f64,
    }
    objects_only!(Point);

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        enabled: bool,
        point: Option<Point>,
        #[serde(default)]
        polygon: Vec<Point>,
    }

    fn read(json: &str) -> Result<Body, String> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        Body::deserialize(ObjectsOnly(&mut deserializer)).map_err(|e| e.to_string())
    }

    #[test]
    fn bodies_and_nested_structs_read_from_objects() {
        let body = read(r#"{"enabled": true, "point": {"lat": 1.5, "lon": 2}, "polygon": [{"lat": 0, "lon": 0}]}"#)
            .expect("objects everywhere");
        assert_eq!(body.point, Some(Point { lat: 1.5, lon: 2.0 }));
        assert_eq!(body.polygon, vec![Point { lat: 0.0, lon: 0.0 }]);
    }

    #[test]
    fn a_body_sent_as_an_array_is_refused() {
        let error = read("[true, null]").expect_err("an array is not an object");
        assert!(
            error.contains("invalid type: sequence, expected struct Body"),
            "{error}"
        );
    }

    #[test]
    fn a_nested_struct_sent_as_an_array_is_refused_where_it_stands() {
        let error = read(r#"{"enabled": true, "point": [1.5, 2]}"#).expect_err("point as array");
        assert!(error.contains("expected struct Point"), "{error}");
        let error = read(r#"{"enabled": true, "polygon": [[1.5, 2]]}"#).expect_err("item as array");
        assert!(error.contains("expected struct Point"), "{error}");
    }
}
