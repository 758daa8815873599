//! The fast path for JSON records: one pass of serde_json straight into small borrowed structs per
//! format, with no DOM and no allocation per key or per string (strings borrow from the record unless
//! they contain escapes).
//!
//! The DOM path ([`crate::json`], `serde_json::Value`) stays the definition of what each format
//! accepts and of every rejection message. The fast path only ever answers for records it can vouch
//! for: whenever it meets anything it does not handle exactly like the DOM path — a value of an
//! unexpected type, a field the DOM path would reject, a duplicate key, a rarely used record shape,
//! malformed JSON — it gives up with [`Bail`], and the record is parsed again by the DOM path, which
//! accepts it or names the offending field. So a record is either parsed here to exactly the event the
//! DOM path would make, or not parsed here at all; the differential tests check that property.
//!
//! One subtlety: serde's `IgnoredAny` (which derived structs use for unknown keys) skips JSON more
//! leniently than `Value` parses it (numbers out of range, nesting deeper than serde_json's limit).
//! [`Strict`] wraps the deserializer so that skipped values are checked exactly like `Value` checks
//! them; otherwise a record the DOM path rejects could be accepted here.

use serde::de::value::{BorrowedStrDeserializer, StrDeserializer, StringDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::Deserialize;
use serde_json::Number;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use storyline_model::{Str, Timestamp};

/// The fast path does not vouch for this record; the DOM path decides.
#[derive(Debug)]
pub(crate) struct Bail;

pub(crate) type Fast<T> = Result<T, Bail>;

/// An object whose first key is this is parsed by `serde_json::Value` as embedded raw JSON (with the
/// `raw_value` feature), not as an object. The fast path leaves such objects to the DOM path.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// The keys of an object that the fast path leaves to the DOM path, typically spellings of a path
/// that are valid but rare (such as a dotted key where the object is normally nested).
pub(crate) trait Refuse {
    /// The test, if the object refuses any key.
    const REFUSE: Option<fn(&str) -> bool> = None;
}

/// Deserializes a whole record, which must be a JSON object, into `T`.
pub(crate) fn object<'a, T: Deserialize<'a> + Refuse>(raw: &'a [u8]) -> Fast<T> {
    // Outside strings, JSON text is ASCII; so invalid UTF-8 anywhere makes the record invalid JSON,
    // and checking the whole record once spares serde_json a check per string.
    let text = crate::utf8(raw).map_err(|_| Bail)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Strict(&mut de)
        .deserialize_any(ObjectOnly(PhantomData::<T>))
        .map_err(|_| Bail)?;
    de.end().map_err(|_| Bail)?;
    Ok(value)
}

/// [`object`], with the record handed to `map` where it was built. Returned by value, a large format's
/// record (~1 KB of [`Field`]s) was copied again at each level of serde_json's and [`Strict`]'s return
/// path: ~70 ms of a 1M-event replay's ingest threads (perf). `map` may run before the rest of the text is
/// checked; when that check fails the result is [`Bail`] all the same, and whatever `map` wrote must be
/// discarded, as after any bail.
pub(crate) fn object_with<'a, T, R>(raw: &'a [u8], map: impl FnOnce(&T) -> Fast<R>) -> Fast<R>
where
    T: Deserialize<'a> + Refuse,
{
    let text = crate::utf8(raw).map_err(|_| Bail)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let mapped = Strict(&mut de)
        .deserialize_any(MappedObject(map, PhantomData::<T>))
        .map_err(|_| Bail)?;
    de.end().map_err(|_| Bail)?;
    mapped
}

struct MappedObject<F, T>(F, PhantomData<T>);

impl<'de, T, R, F> Visitor<'de> for MappedObject<F, T>
where
    T: Deserialize<'de> + Refuse,
    F: FnOnce(&T) -> Fast<R>,
{
    type Value = Fast<R>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Fast<R>, A::Error> {
        let record: T = fields_of(map)?;
        Ok((self.0)(&record))
    }
}

struct ObjectOnly<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Refuse> Visitor<'de> for ObjectOnly<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        fields_of(map)
    }
}

/// `T` from an object's entries, refusing the keys `T` refuses.
fn fields_of<'de, T: Deserialize<'de> + Refuse, A: MapAccess<'de>>(map: A) -> Result<T, A::Error> {
    match T::REFUSE {
        None => T::deserialize(de::value::MapAccessDeserializer::new(map)),
        Some(refuse) => T::deserialize(de::value::MapAccessDeserializer::new(Refusing {
            map,
            refuse,
        })),
    }
}

struct Refusing<A> {
    map: A,
    refuse: fn(&str) -> bool,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Refusing<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        match self.map.next_key_seed(KeyText)? {
            None => Ok(None),
            Some(key) if (self.refuse)(&key) => Err(de::Error::custom("refused key")),
            Some(Cow::Borrowed(key)) => seed
                .deserialize(BorrowedStrDeserializer::new(key))
                .map(Some),
            Some(Cow::Owned(key)) => seed.deserialize(StringDeserializer::new(key)).map(Some),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

// ---------------------------------------------------------------------------------------------------
// Values as the fast path keeps them.

/// One field's value. Scalars are kept (strings borrowed where possible); arrays and objects in a place
/// where a scalar is expected are only noted, as the DOM path would reject them or ignore them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Field<'a> {
    /// The key is not in the record.
    #[default]
    Absent,
    Null,
    Bool(bool),
    Num(Number),
    Str(Cow<'a, str>),
    Array,
    Object,
}

impl<'a> Field<'a> {
    /// What `json::get` returns for a plain key: null counts as absent.
    pub(crate) fn get(&self) -> Option<&Field<'a>> {
        match self {
            Field::Absent | Field::Null => None,
            v => Some(v),
        }
    }

    fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }
}

/// `json::get` for a dotted path `a.b` that may be written flat (`"a.b": v`) or nested
/// (`"a": {"b": v}`): a flat key that is present wins, even when it is null.
pub(crate) fn pick<'r, 'a>(
    flat: &'r Field<'a>,
    nested: Option<&'r Field<'a>>,
) -> Option<&'r Field<'a>> {
    if flat.is_absent() {
        nested.and_then(Field::get)
    } else {
        flat.get()
    }
}

/// [`pick`] with the nested field taken from an object that may be missing.
pub(crate) fn pick_in<'r, 'a, T>(
    flat: &'r Field<'a>,
    object: Option<&'r T>,
    field: fn(&'r T) -> &'r Field<'a>,
) -> Option<&'r Field<'a>> {
    pick(flat, object.map(field))
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Field::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Field::Num(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Field::Num(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // As `Value` does: a non-finite float (which JSON text cannot produce) becomes null.
        Ok(Number::from_f64(v).map_or(Field::Null, Field::Num))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq)?;
        Ok(Field::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map)?;
        Ok(Field::Object)
    }
}

/// A value that should be an object of known fields `T`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Nested<T> {
    #[default]
    Absent,
    Null,
    Object(T),
    /// Present, neither null nor an object.
    Other,
}

impl<T> Nested<T> {
    pub(crate) fn object(&self) -> Option<&T> {
        match self {
            Nested::Object(t) => Some(t),
            _ => None,
        }
    }

    /// `json::get(o, key).is_some()`.
    pub(crate) fn is_some(&self) -> bool {
        matches!(self, Nested::Object(_) | Nested::Other)
    }
}

impl<'de, T: Deserialize<'de> + Refuse> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NestedVisitor(PhantomData))
    }
}

struct NestedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Refuse> Visitor<'de> for NestedVisitor<T> {
    type Value = Nested<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        fields_of(map).map(Nested::Object)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Nested::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Nested::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq)?;
        Ok(Nested::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Nested::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Nested::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Nested::Other)
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(if v.is_finite() {
            Nested::Other
        } else {
            Nested::Null
        })
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Nested::Other)
    }
}

/// A value that should be an array of `T`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Seq<T> {
    #[default]
    Absent,
    Null,
    Items(Vec<T>),
    /// Present, neither null nor an array.
    Other,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Seq<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SeqVisitor(PhantomData))
    }
}

struct SeqVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
    type Value = Seq<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Seq::Items(items))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Seq::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Seq::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map)?;
        Ok(Seq::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Seq::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Seq::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Seq::Other)
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(if v.is_finite() { Seq::Other } else { Seq::Null })
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Seq::Other)
    }
}

/// An object's entries in record order, for objects with free-form keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Entries<'a, T>(pub(crate) Vec<(Cow<'a, str>, T)>);

impl<T> Refuse for Entries<'_, T> {}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Entries<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EntriesVisitor(PhantomData))
    }
}

struct EntriesVisitor<'a, T>(PhantomData<(&'a (), T)>);

impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for EntriesVisitor<'a, T> {
    type Value = Entries<'a, T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key_seed(KeyText)? {
            out.push((key, map.next_value()?));
        }
        Ok(Entries(out))
    }
}

/// A key's text, borrowed unless it has escapes.
pub(crate) struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

// ---------------------------------------------------------------------------------------------------
// The DOM path's coercions (`json::value_text` and friends), on fast-path values. Where the DOM path
// would reject, these bail.

/// `json::value_text`: text; numbers and booleans rendered as text; "-" and "" mean absent.
pub(crate) fn text(v: Option<&Field>) -> Fast<Option<Str>> {
    match v {
        None | Some(Field::Absent | Field::Null) => Ok(None),
        Some(Field::Str(s)) if is_placeholder(s) => Ok(None),
        Some(Field::Str(s)) => Ok(Some(Str::from(&**s))),
        Some(Field::Num(n)) => Ok(Some(Str::from(n.to_string()))),
        Some(Field::Bool(b)) => Ok(Some(Str::from(if *b { "true" } else { "false" }))),
        Some(Field::Array | Field::Object) => Err(Bail),
    }
}

/// `json::value_uint`: integers, integral floats and numeric text.
pub(crate) fn uint<T: TryFrom<u64>>(v: Option<&Field>) -> Fast<Option<T>> {
    let n = match v {
        None | Some(Field::Absent | Field::Null) => return Ok(None),
        Some(Field::Num(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                .map(|f| f as u64)
        }),
        Some(Field::Str(s)) if is_placeholder(s) => return Ok(None),
        Some(Field::Str(s)) => crate::trim(s).parse::<u64>().ok(),
        Some(_) => None,
    };
    n.and_then(|n| T::try_from(n).ok()).map(Some).ok_or(Bail)
}

/// `json::float`: a non-negative finite number, or numeric text.
pub(crate) fn float(v: Option<&Field>) -> Fast<Option<f64>> {
    let f = match v {
        None | Some(Field::Absent | Field::Null) => return Ok(None),
        Some(Field::Num(n)) => n.as_f64(),
        Some(Field::Str(s)) if is_placeholder(s) => return Ok(None),
        Some(Field::Str(s)) => crate::trim(s).parse::<f64>().ok(),
        Some(_) => None,
    };
    f.filter(|f| f.is_finite() && *f >= 0.0)
        .map(Some)
        .ok_or(Bail)
}

/// `json::ip`.
pub(crate) fn ip(v: Option<&Field>) -> Fast<Option<std::net::IpAddr>> {
    match v {
        None | Some(Field::Absent | Field::Null) => Ok(None),
        Some(Field::Str(s)) if is_placeholder(s) => Ok(None),
        Some(Field::Str(s)) => crate::json::parse_ip(s).map(Some).ok_or(Bail),
        Some(_) => Err(Bail),
    }
}

/// `json::datetime`: a required RFC 3339-like time.
pub(crate) fn datetime(v: Option<&Field>) -> Fast<Timestamp> {
    match v {
        Some(Field::Str(s)) => crate::timefmt::parse_datetime(s).ok_or(Bail),
        _ => Err(Bail),
    }
}

/// The same test as the DOM path's.
fn is_placeholder(s: &str) -> bool {
    let s = crate::trim(s);
    s.is_empty() || s == "-"
}

// ---------------------------------------------------------------------------------------------------
// Strict: a deserializer wrapper under which skipping a value checks it exactly as parsing it into a
// `serde_json::Value` would (number range, nesting depth, string contents, the raw-value key).

pub(crate) struct Strict<D>(pub(crate) D);

macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(Wrap(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_option deserialize_unit
        deserialize_seq deserialize_map deserialize_identifier
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, Wrap(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_newtype_struct(name, Wrap(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, Wrap(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrap(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_struct(name, fields, Wrap(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, Wrap(visitor))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_any(SkipThen(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A visitor whose nested deserializers, sequences and maps stay [`Strict`].
struct Wrap<V>(V);

macro_rules! forward_visit {
    ($($method:ident: $ty:ty)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64 visit_i128: i128
        visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64 visit_u128: u128
        visit_f32: f32 visit_f64: f64 visit_char: char
        visit_str: &str visit_borrowed_str: &'de str visit_string: String
        visit_bytes: &[u8] visit_borrowed_bytes: &'de [u8] visit_byte_buf: Vec<u8>
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(Strict(d))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(Strict(d))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(StrictSeq(seq))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(StrictMap(map))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(StrictEnum(data))
    }
}

struct StrictSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Strict(d))
    }
}

struct StrictSeq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for StrictSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct StrictMap<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for StrictMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(CheckedKey(seed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct StrictEnum<A>(A);

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for StrictEnum<A> {
    type Error = A::Error;
    type Variant = StrictVariant<A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(StrictSeed(seed))?;
        Ok((value, StrictVariant(variant)))
    }
}

struct StrictVariant<A>(A);

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for StrictVariant<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(StrictSeed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrap(visitor))
    }
}

/// Reads a map key as text, refuses the raw-value key, then hands the text to `seed`.
struct CheckedKey<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for CheckedKey<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for CheckedKey<S> {
    type Value = S::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        check_key(v)?;
        self.0.deserialize(BorrowedStrDeserializer::new(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        check_key(v)?;
        self.0.deserialize(StrDeserializer::new(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        check_key(&v)?;
        self.0.deserialize(StringDeserializer::new(v))
    }
}

fn check_key<E: de::Error>(key: &str) -> Result<(), E> {
    if key == RAW_VALUE_TOKEN {
        return Err(E::custom("raw value key"));
    }
    Ok(())
}

/// Skips one value as strictly as `Value` would parse it, then reports unit to the wrapped visitor.
struct SkipThen<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for SkipThen<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq)?;
        self.0.visit_unit()
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map)?;
        self.0.visit_unit()
    }
}

/// Skips one value strictly, whatever deserializer it comes from.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(SkipThen(UnitVisitor))
    }
}

struct UnitVisitor;

impl<'de> Visitor<'de> for UnitVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("unit")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element_seed(Skip)?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map
        .next_key_seed(CheckedKey(PhantomData::<IgnoredAny>))?
        .is_some()
    {
        map.next_value_seed(Skip)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Default, Debug)]
    #[serde(default)]
    struct Probe<'a> {
        #[serde(borrow)]
        a: Field<'a>,
        #[serde(borrow)]
        n: Nested<Inner<'a>>,
        #[serde(borrow)]
        l: Seq<Field<'a>>,
    }

    #[derive(Deserialize, Default, Debug)]
    #[serde(default)]
    struct Inner<'a> {
        #[serde(borrow)]
        b: Field<'a>,
    }

    impl Refuse for Probe<'_> {
        const REFUSE: Option<fn(&str) -> bool> = Some(|key| key == "refused");
    }
    impl Refuse for Inner<'_> {
        const REFUSE: Option<fn(&str) -> bool> = Some(|key| key.starts_with("b."));
    }

    #[test]
    fn refused_keys() {
        assert!(object::<Probe>(br#"{"a":1,"refused":2}"#).is_err());
        assert!(object::<Probe>(br#"{"a":1,"n":{"b.c":2}}"#).is_err());
        assert!(object::<Probe>(br#"{"a":1,"n":{"c.b":2},"x":{"refused":1}}"#).is_ok());
    }

    /// Exactly the records `Value` rejects are refused here, including ones `IgnoredAny` would skip.
    #[test]
    fn strict_like_value() {
        let deep = format!(r#"{{"x":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
        let cases: &[&str] = &[
            r#"{"a":"x","z":1e999}"#,
            r#"{"a":"x","z":[1,{"q":-1e999}]}"#,
            r#"{"a":"x","z":"\ud800"}"#,
            r#"{"a":"x","z":[1,]}"#,
            r#"{"a":1} x"#,
            r#"{"a":"x","n":{"b":1,"c":1e999}}"#,
            &deep,
            "[]",
            "1",
            r#"{"a":"x","z":{"y":[[[{"w":"\u00e9"}]]]}}"#,
            r#"{"a":"\u00e9","n":{"b":"x"},"l":[1,"2",null,[3],{}]}"#,
        ];
        for case in cases {
            let value_ok = serde_json::from_slice::<serde_json::Value>(case.as_bytes())
                .map(|v| v.is_object())
                .unwrap_or(false);
            let fast_ok = object::<Probe>(case.as_bytes()).is_ok();
            assert_eq!(fast_ok, value_ok, "{case}");
        }
        // `Value` reads this object as the raw JSON `1`; the fast path leaves it to the DOM path.
        let raw = br#"{"a":"x","z":{"$serde_json::private::RawValue":"1"}}"#;
        assert!(object::<Probe>(raw).is_err());
    }

    #[test]
    fn fields_keep_scalars_and_borrow() {
        let raw =
            br#"{"a":"x\"y","n":{"b":"plain"},"l":[1,"2",null,[3],{}],"other":{"deep":[1,2]}}"#;
        let p: Probe = object(raw).unwrap();
        assert_eq!(p.a, Field::Str(Cow::Owned("x\"y".into())));
        let b = &p.n.object().unwrap().b;
        assert!(matches!(b, Field::Str(Cow::Borrowed("plain"))));
        assert_eq!(
            p.l,
            Seq::Items(vec![
                Field::Num(1u64.into()),
                Field::Str("2".into()),
                Field::Null,
                Field::Array,
                Field::Object
            ])
        );
    }

    #[test]
    fn flat_key_wins_even_when_null() {
        let x = Field::Str("x".into());
        assert_eq!(pick(&Field::Null, Some(&x)), None);
        assert_eq!(pick(&Field::Absent, Some(&x)), Some(&x));
        assert_eq!(pick(&x, None), Some(&x));
        assert_eq!(pick(&Field::Absent, Some(&Field::Null)), None);
    }
}
