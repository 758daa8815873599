//! Records already in Elastic Common Schema names (ecs.elastic.co, "ECS Field Reference"), i.e. the
//! JSON form of the canonical event. Nested objects and dotted keys (`"source.ip": ...`, as
//! Elasticsearch accepts them) may be mixed. Own id: `event.id` when the record has one.

use crate::error::Rejection;
use crate::json::{self, kind_of, Obj};
use serde::Deserialize;
use serde_json::{Map, Value};
use storyline_model::{Event, Str};

pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    super::fast_or_dom(raw, ev, fast::parse, parse_dom)
}

/// The definition of the format, and the path that names the field of a rejected record.
pub(crate) fn parse_dom(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let mut o = json::parse_object(raw, "an ECS record")?;
    // Read separately: the model's deserializer takes integers as nanoseconds, while an integer
    // `@timestamp` in ECS data conventionally means milliseconds; requiring text avoids guessing.
    let timestamp = json::datetime(
        &o,
        "@timestamp",
        "ECS records need @timestamp as RFC 3339 text, like \"2026-11-21T10:00:00Z\"",
    )?;
    o.remove("@timestamp");
    let o = expand_dotted(o)?;
    let value = Value::Object(o);
    let parsed = Event::deserialize(&value).map_err(|e| diagnose(&value, &e))?;
    *ev = parsed;
    ev.timestamp = timestamp;
    Ok(own_id(ev))
}

fn own_id(ev: &Event) -> Option<Str> {
    Some(ev.event.id.clone()).filter(|id| !id.trim().is_empty())
}

/// The fast path (see [`crate::fast`]): the model's own deserializer, fed straight from the record
/// text. Records with dotted top-level keys, which the DOM path merges into objects, are left to it.
pub(crate) mod fast {
    use super::*;
    use crate::fast::{self as f, Bail, Fast, Field, KeyText, Strict};
    use serde::de::value::{BorrowedStrDeserializer, MapAccessDeserializer, StringDeserializer};
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
    use std::borrow::Cow;
    use std::fmt;

    pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Fast<Option<Str>> {
        let text = crate::utf8(raw).map_err(|_| Bail)?;
        let mut de = serde_json::Deserializer::from_str(text);
        let (event, timestamp) = Strict(&mut de).deserialize_any(Top).map_err(|_| Bail)?;
        de.end().map_err(|_| Bail)?;
        let timestamp = f::datetime(timestamp.get())?;
        *ev = event;
        ev.timestamp = timestamp;
        Ok(own_id(ev))
    }

    /// The record as an [`Event`], with `@timestamp` taken aside (the DOM path reads it with the
    /// sensor time formats, not the model's RFC 3339 deserializer).
    struct Top;

    impl<'de> Visitor<'de> for Top {
        type Value = (Event, Field<'de>);

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an ECS object")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let mut timestamp = Field::Absent;
            let event = Event::deserialize(MapAccessDeserializer::new(TopKeys {
                map,
                timestamp: &mut timestamp,
            }))?;
            Ok((event, timestamp))
        }
    }

    struct TopKeys<'t, 'de, A> {
        map: A,
        timestamp: &'t mut Field<'de>,
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for TopKeys<'_, 'de, A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            loop {
                match self.map.next_key_seed(KeyText)? {
                    None => return Ok(None),
                    // As in a `Value` map, the last of repeated keys wins.
                    Some(key) if key == "@timestamp" => *self.timestamp = self.map.next_value()?,
                    Some(key) if key.contains('.') => return Err(de::Error::custom("dotted key")),
                    Some(Cow::Borrowed(key)) => {
                        return seed
                            .deserialize(BorrowedStrDeserializer::new(key))
                            .map(Some)
                    }
                    Some(Cow::Owned(key)) => {
                        return seed.deserialize(StringDeserializer::new(key)).map(Some)
                    }
                }
            }
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(
            &mut self,
            seed: V,
        ) -> Result<V::Value, A::Error> {
            self.map.next_value_seed(seed)
        }
    }
}

/// Turns `{"source.ip": x}` into `{"source": {"ip": x}}`, merging with nested objects already present.
fn expand_dotted(o: Obj) -> Result<Obj, Rejection> {
    if !o.keys().any(|k| k.contains('.')) {
        return Ok(o);
    }
    let mut out = Map::new();
    for (key, value) in o {
        let mut target = &mut out;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                merge(target, part, value, &key)?;
                break;
            }
            let slot = target
                .entry(part)
                .or_insert_with(|| Value::Object(Map::new()));
            target = match slot {
                Value::Object(m) => m,
                other => {
                    return Err(Rejection::bad_value(
                        key.as_str(),
                        kind_of(other),
                        "an object: the record has both a dotted and a plain key for this path",
                    ))
                }
            };
        }
    }
    Ok(out)
}

fn merge(target: &mut Obj, key: &str, value: Value, full: &str) -> Result<(), Rejection> {
    match (target.get_mut(key), value) {
        (None, v) => {
            target.insert(key.to_owned(), v);
            Ok(())
        }
        (Some(Value::Object(existing)), Value::Object(new)) => {
            for (k, v) in new {
                merge(existing, &k, v, full)?;
            }
            Ok(())
        }
        (Some(_), _) => Err(Rejection::bad_value(
            full,
            "a second value",
            "each field once (it appears both dotted and nested)",
        )),
    }
}

/// serde's message for a `Value` names no field. Find the first leaf that fails on its own, so the
/// rejection can name it: only done on the failure path, where a few small deserializations are cheap.
fn diagnose(value: &Value, err: &serde_json::Error) -> Rejection {
    let mut leaves = Vec::new();
    collect_leaves(value, &mut Vec::new(), &mut leaves);
    for (path, leaf) in leaves {
        let mut probe = leaf.clone();
        for part in path.iter().rev() {
            let mut m = Map::new();
            m.insert((*part).to_owned(), probe);
            probe = Value::Object(m);
        }
        if let Err(e) = Event::deserialize(&probe) {
            return Rejection::bad_value(path.join("."), leaf, expected(&e.to_string()));
        }
    }
    Rejection::bad_value("record", "an ECS object", expected(&err.to_string()))
}

/// serde's "invalid type: string \"x\", expected u16" in words for people who write JSON.
fn expected(serde_msg: &str) -> String {
    if serde_msg.contains("IP address") {
        return json::IP_EXPECTED.to_owned();
    }
    let want = serde_msg
        .rsplit_once(", expected ")
        .map_or(serde_msg, |(_, w)| w);
    match want {
        "u8" => "an integer 0-255".to_owned(),
        "u16" => json::PORT_EXPECTED.replace("a port number", "an integer"),
        "u32" | "u64" => "a non-negative integer".to_owned(),
        "i64" => "an integer".to_owned(),
        "a sequence" => "an array".to_owned(),
        w if w.starts_with("struct ") => "an object".to_owned(),
        w => w.to_owned(),
    }
}

/// Objects are descended into; anything else (arrays included) is a leaf.
fn collect_leaves<'a>(
    v: &'a Value,
    path: &mut Vec<&'a str>,
    out: &mut Vec<(Vec<&'a str>, &'a Value)>,
) {
    match v {
        Value::Object(m) if !m.is_empty() || path.is_empty() => {
            for (k, child) in m {
                path.push(k);
                collect_leaves(child, path, out);
                path.pop();
            }
        }
        _ => out.push((path.clone(), v)),
    }
}
