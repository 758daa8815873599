//! One module per input format. Each fills an [`Event`] from the record bytes and returns the record's
//! own event id where the format has one; `lib.rs` does what is common (observer name, id, `finish`).

pub(crate) mod argus;
pub(crate) mod aws_vpc;
pub(crate) mod cef;
mod columns;
mod common;
pub(crate) mod ecs;
pub(crate) mod gcp_vpc;
pub(crate) mod nfdump;
pub(crate) mod panos;
pub(crate) mod suricata;
pub(crate) mod sysmon;
pub(crate) mod zeek;
pub(crate) mod zeek_tsv;

use crate::error::Rejection;
use crate::fast::Fast;
use storyline_model::{Event, Str};

/// Fills the event; returns the record's own id, if its format defines one and the record has it.
pub(crate) type ParseFn = fn(&[u8], &mut Event) -> Result<Option<Str>, Rejection>;

/// A JSON format's fast path (see [`crate::fast`]): like a [`ParseFn`], or gives up.
pub(crate) type FastFn = fn(&[u8], &mut Event) -> Fast<Option<Str>>;

/// The fast path, and where it gives up, the DOM path on a fresh event.
fn fast_or_dom(
    raw: &[u8],
    ev: &mut Event,
    fast: FastFn,
    dom: ParseFn,
) -> Result<Option<Str>, Rejection> {
    match fast(raw, ev) {
        Ok(own) => Ok(own),
        Err(_) => {
            *ev = Event::default();
            dom(raw, ev)
        }
    }
}

/// The fast path of a format whose records are JSON objects.
pub(crate) fn fast_fn(name: &str) -> Option<FastFn> {
    paths(name).map(|(fast, _)| fast)
}

/// The fast and the DOM path of a format whose records are JSON objects.
pub(crate) fn paths(name: &str) -> Option<(FastFn, ParseFn)> {
    Some(match name {
        "zeek" => (zeek::fast::parse, zeek::parse_dom),
        "suricata" => (suricata::fast::parse, suricata::parse_dom),
        "sysmon" => (sysmon::fast::parse, sysmon::parse_dom),
        "aws_vpc" => (aws_vpc::fast::parse, aws_vpc::parse_dom),
        "ecs" => (ecs::fast::parse, ecs::parse_dom),
        "gcp_vpc" => (gcp_vpc::fast::parse, gcp_vpc::parse_dom),
        _ => return None,
    })
}

pub(crate) fn lookup(name: &str) -> Option<(&'static str, ParseFn)> {
    let f: ParseFn = match name {
        "ecs" => ecs::parse,
        "zeek" => zeek::parse,
        "suricata" => suricata::parse,
        "aws_vpc" => aws_vpc::parse,
        "sysmon" => sysmon::parse,
        "panos" => panos::parse,
        "zeek_tsv" => zeek_tsv::parse,
        "nfdump" => nfdump::parse,
        "argus" => argus::parse,
        "gcp_vpc" => gcp_vpc::parse,
        "cef" => cef::parse,
        _ => return None,
    };
    let canonical = crate::FORMATS.iter().find(|f| **f == name)?;
    Some((canonical, f))
}

/// HTTP request target to `url.*`. Sensors log the Host header and the request target separately; the
/// target is usually origin-form (`/path?q`) but is absolute (`http://h/p`) for proxy requests.
pub(crate) fn set_url(ev: &mut Event, host: Option<Str>, target: Option<Str>) {
    if let Some(t) = &target {
        if t.starts_with('/') {
            let path = t.split(['?', '#']).next().unwrap_or("");
            ev.url.path = Some(path.into());
            if let Some(h) = &host {
                ev.url.full = Some(format!("http://{h}{t}").into());
            }
        } else if t.contains("://") {
            ev.url.full = Some(t.clone());
        }
    }
    ev.url.domain = host;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_name_resolves() {
        for f in crate::FORMATS {
            assert_eq!(lookup(f).map(|(n, _)| n), Some(*f));
        }
        assert!(lookup("Zeek").is_none());
    }

    #[test]
    fn urls() {
        let mut e = Event::default();
        set_url(&mut e, Some("example.com".into()), Some("/a/b?x=1".into()));
        assert_eq!(e.url.full.as_deref(), Some("http://example.com/a/b?x=1"));
        assert_eq!(e.url.path.as_deref(), Some("/a/b"));
        assert_eq!(e.url.domain.as_deref(), Some("example.com"));
        let mut e = Event::default();
        set_url(&mut e, None, Some("http://proxy.example/x".into()));
        assert_eq!(e.url.full.as_deref(), Some("http://proxy.example/x"));
        assert_eq!(e.url.path, None);
    }
}
