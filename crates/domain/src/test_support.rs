//! A serializer that records which serde method a value used, so unit tests can
//! tell a JSON string (`"str:12.30"`) from a JSON number (`"i64:20"`) without
//! a format crate.

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Impossible};

pub fn serialized<T: Serialize>(value: &T) -> String {
    match value.serialize(Recorder) {
        Ok(recorded) => recorded,
        Err(error) => format!("error:{error}"),
    }
}

#[derive(Debug)]
pub struct Unsupported(String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Unsupported(message.to_string())
    }
}

struct Recorder;

fn unsupported(kind: &str) -> Result<String, Unsupported> {
    Err(Unsupported(format!("unsupported {kind}")))
}

impl ser::Serializer for Recorder {
    type Ok = String;
    type Error = Unsupported;
    type SerializeSeq = Impossible<String, Unsupported>;
    type SerializeTuple = Impossible<String, Unsupported>;
    type SerializeTupleStruct = Impossible<String, Unsupported>;
    type SerializeTupleVariant = Impossible<String, Unsupported>;
    type SerializeMap = Impossible<String, Unsupported>;
    type SerializeStruct = Impossible<String, Unsupported>;
    type SerializeStructVariant = Impossible<String, Unsupported>;

    fn serialize_str(self, v: &str) -> Result<String, Unsupported> {
        Ok(format!("str:{v}"))
    }
    fn serialize_i64(self, v: i64) -> Result<String, Unsupported> {
        Ok(format!("i64:{v}"))
    }
    fn serialize_u64(self, v: u64) -> Result<String, Unsupported> {
        Ok(format!("u64:{v}"))
    }
    fn serialize_f64(self, v: f64) -> Result<String, Unsupported> {
        Ok(format!("f64:{v}"))
    }
    fn serialize_bool(self, _: bool) -> Result<String, Unsupported> {
        unsupported("bool")
    }
    fn serialize_i8(self, v: i8) -> Result<String, Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<String, Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<String, Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u8(self, v: u8) -> Result<String, Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<String, Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<String, Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_f32(self, v: f32) -> Result<String, Unsupported> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_char(self, _: char) -> Result<String, Unsupported> {
        unsupported("char")
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, Unsupported> {
        unsupported("bytes")
    }
    fn serialize_none(self) -> Result<String, Unsupported> {
        unsupported("none")
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<String, Unsupported> {
        unsupported("some")
    }
    fn serialize_unit(self) -> Result<String, Unsupported> {
        unsupported("unit")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, Unsupported> {
        unsupported("unit struct")
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<String, Unsupported> {
        unsupported("unit variant")
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, _: &T) -> Result<String, Unsupported> {
        unsupported("newtype struct")
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Unsupported> {
        unsupported("newtype variant")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
        Err(Unsupported("unsupported seq".into()))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
        Err(Unsupported("unsupported tuple".into()))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Unsupported> {
        Err(Unsupported("unsupported tuple struct".into()))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Err(Unsupported("unsupported tuple variant".into()))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        Err(Unsupported("unsupported map".into()))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Unsupported> {
        Err(Unsupported("unsupported struct".into()))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Err(Unsupported("unsupported struct variant".into()))
    }
}
