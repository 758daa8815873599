//! Suricata EVE JSON: flow, netflow, dns, http, tls, alert and anomaly records (other event types are
//! accepted with their common fields).
//!
//! Field names follow the Suricata user guide, "Eve JSON Format" (docs.suricata.io, output/eve/
//! eve-json-format), including DNS logging versions 1 (one record per answer), 2 (detailed `answers`
//! or `grouped`) and 3 (`queries`). EVE records have no event id of their own (`flow_id` names the
//! flow, shared by all its records), so the id is the content hash.

use super::common::{app_protocol, categorize, observer, set_transport};
use crate::error::Rejection;
use crate::json::{self, Obj, COUNT_EXPECTED, PORT_EXPECTED};
use crate::timefmt;
use serde_json::Value;
use storyline_model::{DnsAnswer, Event, Str};

pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    super::fast_or_dom(raw, ev, fast::parse, parse_dom)
}

/// The definition of the format, and the path that names the field of a rejected record.
pub(crate) fn parse_dom(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let o = json::parse_object(raw, "a Suricata EVE record")?;
    observer(ev, "ids", "OISF", "Suricata");
    ev.timestamp = json::datetime(
        &o,
        "timestamp",
        "every EVE record has `timestamp`; is this really Suricata EVE JSON?",
    )?;
    let event_type = json::require_text(
        &o,
        "event_type",
        "every EVE record has `event_type` (flow, dns, http, tls, alert, ...)",
    )?;
    categorize_event(ev, &event_type);

    tuple(&o, ev)?;
    ev.session.id = json::text(&o, "flow_id")?;
    ev.network.community_id = json::text(&o, "community_id")?;
    if let Some(p) = json::text(&o, "app_proto")? {
        ev.network.protocol = app_protocol(&p);
    }
    counters(&o, ev)?;
    if let Some(dns_obj) = object(&o, "dns")? {
        dns(dns_obj, ev)?;
    }
    if json::get(&o, "http").is_some() {
        http(&o, ev)?;
    }
    if json::get(&o, "tls").is_some() {
        ev.network.protocol.get_or_insert_with(|| "tls".into());
        ev.tls.server_name = json::text(&o, "tls.sni")?;
    }
    if json::get(&o, "alert").is_some() {
        ev.rule.name = json::text(&o, "alert.signature")?;
        ev.event.action = json::text(&o, "alert.action")?;
    }
    if json::get(&o, "anomaly").is_some() {
        ev.event.action = json::text(&o, "anomaly.event")?;
    }
    Ok(None)
}

fn categorize_event(ev: &mut Event, event_type: &str) {
    let (kind, kind_type) = match event_type {
        "flow" | "netflow" => ("event", "connection"),
        "dns" | "http" | "tls" => ("event", "protocol"),
        "alert" => ("alert", "info"),
        _ => ("event", "info"),
    };
    categorize(ev, kind, kind_type, &format!("suricata.{event_type}"));
}

fn object<'a>(o: &'a Obj, field: &str) -> Result<Option<&'a Obj>, Rejection> {
    match json::get(o, field) {
        None => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(other) => Err(Rejection::bad_value(
            field,
            json::kind_of(other),
            "an object",
        )),
    }
}

fn tuple(o: &Obj, ev: &mut Event) -> Result<(), Rejection> {
    ev.source.ip = json::ip(o, "src_ip")?;
    ev.source.port = json::uint(o, "src_port", PORT_EXPECTED)?;
    ev.destination.ip = json::ip(o, "dest_ip")?;
    ev.destination.port = json::uint(o, "dest_port", PORT_EXPECTED)?;
    if let Some(p) = json::text(o, "proto")? {
        set_transport(ev, &p);
    }
    // The model (like Zeek and the Community ID spec) carries ICMP type/code in the port fields;
    // EVE has them separately.
    if matches!(ev.network.iana_number, Some(1 | 58)) && ev.source.port.is_none() {
        ev.source.port = json::uint(o, "icmp_type", "an ICMP type 0-255")?;
        ev.destination.port = json::uint(o, "icmp_code", "an ICMP code 0-255")?;
    }
    Ok(())
}

/// `flow` counters are per direction (to server = from the source); `netflow` records are one
/// direction each, so they only have the source side.
fn counters(o: &Obj, ev: &mut Event) -> Result<(), Rejection> {
    ev.source.bytes = json::uint(o, "flow.bytes_toserver", COUNT_EXPECTED)?;
    ev.destination.bytes = json::uint(o, "flow.bytes_toclient", COUNT_EXPECTED)?;
    ev.source.packets = json::uint(o, "flow.pkts_toserver", COUNT_EXPECTED)?;
    ev.destination.packets = json::uint(o, "flow.pkts_toclient", COUNT_EXPECTED)?;
    if ev.source.bytes.is_none() {
        ev.source.bytes = json::uint(o, "netflow.bytes", COUNT_EXPECTED)?;
        ev.source.packets = json::uint(o, "netflow.pkts", COUNT_EXPECTED)?;
    }
    for section in ["flow", "netflow"] {
        let start = json::text(o, &format!("{section}.start"))?;
        let end = json::text(o, &format!("{section}.end"))?;
        if let (Some(s), Some(e)) = (start, end) {
            let s = timefmt::parse_datetime(&s)
                .ok_or_else(|| Rejection::bad_timestamp(format!("{section}.start"), &s))?;
            let e = timefmt::parse_datetime(&e)
                .ok_or_else(|| Rejection::bad_timestamp(format!("{section}.end"), &e))?;
            ev.event.duration = Some(e.nanos_since(s).max(0));
            break;
        }
    }
    Ok(())
}

fn dns(d: &Obj, ev: &mut Event) -> Result<(), Rejection> {
    ev.network.protocol.get_or_insert_with(|| "dns".into());
    let per_answer_record = json::get(d, "rdata").is_some();
    // Version 3 lists the questions; versions 1 and 2 put the name at the top.
    let question = match json::get(d, "queries") {
        Some(Value::Array(qs)) => match qs.first() {
            Some(Value::Object(q)) => Some(q),
            _ => None,
        },
        _ => None,
    };
    let q = question.unwrap_or(d);
    let prefix = if question.is_some() {
        "dns.queries.0."
    } else {
        "dns."
    };
    ev.dns.question.name = json::text(q, "rrname").map_err(|e| rename(e, prefix))?;
    if !per_answer_record {
        ev.dns.question.kind = json::text(q, "rrtype").map_err(|e| rename(e, prefix))?;
    }
    ev.dns.response_code = json::text(d, "rcode").map_err(|e| rename(e, "dns."))?;

    if let Some(answers) = json::get(d, "answers") {
        let Value::Array(answers) = answers else {
            return Err(Rejection::bad_value(
                "dns.answers",
                json::kind_of(answers),
                "an array of objects",
            ));
        };
        for a in answers {
            let Value::Object(a) = a else {
                return Err(Rejection::bad_value(
                    "dns.answers",
                    json::kind_of(a),
                    "an array of objects",
                ));
            };
            push_answer(a, ev).map_err(|e| rename(e, "dns.answers[]."))?;
        }
    } else if let Some(grouped) = json::get(d, "grouped") {
        grouped_answers(grouped, ev)?;
    } else if per_answer_record {
        push_answer(d, ev).map_err(|e| rename(e, "dns."))?;
    }
    Ok(())
}

/// Answers without `rdata` (SOA, for example, has its own object) carry nothing the model keeps.
fn push_answer(a: &Obj, ev: &mut Event) -> Result<(), Rejection> {
    let Some(data) = json::text(a, "rdata")? else {
        return Ok(());
    };
    let kind = json::text(a, "rrtype")?;
    let ttl = json::uint(a, "ttl", "a TTL in seconds")?;
    ev.dns.answers.push(DnsAnswer { data, kind, ttl });
    Ok(())
}

fn grouped_answers(grouped: &Value, ev: &mut Event) -> Result<(), Rejection> {
    let expected = "an object of record type to data list, like {\"A\": [\"10.0.0.1\"]}";
    let Value::Object(g) = grouped else {
        return Err(Rejection::bad_value(
            "dns.grouped",
            json::kind_of(grouped),
            expected,
        ));
    };
    for (rrtype, data) in g {
        let Value::Array(items) = data else {
            return Err(Rejection::bad_value(
                "dns.grouped",
                json::kind_of(data),
                expected,
            ));
        };
        for item in items {
            // Only text data: grouped SOA/SRV entries are objects the model has no place for.
            if let Value::String(s) = item {
                ev.dns.answers.push(DnsAnswer {
                    data: s.as_str().into(),
                    kind: Some(rrtype.as_str().into()),
                    ttl: None,
                });
            }
        }
    }
    Ok(())
}

/// Field names in rejections are full record paths, not paths within a sub-object.
fn rename(e: Rejection, prefix: &str) -> Rejection {
    match e {
        Rejection::BadValue {
            field,
            value,
            expected,
        } => Rejection::BadValue {
            field: format!("{prefix}{field}"),
            value,
            expected,
        },
        Rejection::BadTimestamp { field, value } => Rejection::BadTimestamp {
            field: format!("{prefix}{field}"),
            value,
        },
        Rejection::MissingField { field, hint } => Rejection::MissingField {
            field: format!("{prefix}{field}"),
            hint,
        },
        other => other,
    }
}

fn http(o: &Obj, ev: &mut Event) -> Result<(), Rejection> {
    ev.network.protocol.get_or_insert_with(|| "http".into());
    let host = json::text(o, "http.hostname")?;
    let url = json::text(o, "http.url")?;
    super::set_url(ev, host, url);
    ev.http.request.method = json::text(o, "http.http_method")?;
    ev.http.response.status_code = json::uint(o, "http.status", "an HTTP status code like 200")?;
    Ok(())
}

/// The fast path (see [`crate::fast`]): the same mapping as [`parse_dom`], on borrowed fields.
pub(crate) mod fast {
    use super::*;
    use crate::fast::{self as f, Bail, Entries, Fast, Field, Nested, Refuse, Seq};
    use serde::Deserialize;

    /// The keys [`parse_dom`] reads. EVE nests its sections; flattened (dotted) keys are left to the
    /// DOM path.
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Record<'a> {
        #[serde(borrow)]
        timestamp: Field<'a>,
        #[serde(borrow)]
        event_type: Field<'a>,
        #[serde(borrow)]
        src_ip: Field<'a>,
        #[serde(borrow)]
        src_port: Field<'a>,
        #[serde(borrow)]
        dest_ip: Field<'a>,
        #[serde(borrow)]
        dest_port: Field<'a>,
        #[serde(borrow)]
        proto: Field<'a>,
        #[serde(borrow)]
        icmp_type: Field<'a>,
        #[serde(borrow)]
        icmp_code: Field<'a>,
        #[serde(borrow)]
        flow_id: Field<'a>,
        #[serde(borrow)]
        community_id: Field<'a>,
        #[serde(borrow)]
        app_proto: Field<'a>,
        #[serde(borrow)]
        flow: Nested<Counters<'a>>,
        #[serde(borrow)]
        netflow: Nested<Counters<'a>>,
        #[serde(borrow)]
        dns: Nested<Dns<'a>>,
        #[serde(borrow)]
        http: Nested<Http<'a>>,
        #[serde(borrow)]
        tls: Nested<Tls<'a>>,
        #[serde(borrow)]
        alert: Nested<Alert<'a>>,
        #[serde(borrow)]
        anomaly: Nested<Anomaly<'a>>,
    }

    /// `flow` and `netflow` (which has `bytes` and `pkts` where `flow` has per-direction counters).
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Counters<'a> {
        #[serde(borrow)]
        bytes_toserver: Field<'a>,
        #[serde(borrow)]
        bytes_toclient: Field<'a>,
        #[serde(borrow)]
        pkts_toserver: Field<'a>,
        #[serde(borrow)]
        pkts_toclient: Field<'a>,
        #[serde(borrow)]
        bytes: Field<'a>,
        #[serde(borrow)]
        pkts: Field<'a>,
        #[serde(borrow)]
        start: Field<'a>,
        #[serde(borrow)]
        end: Field<'a>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Dns<'a> {
        #[serde(borrow)]
        rrname: Field<'a>,
        #[serde(borrow)]
        rrtype: Field<'a>,
        #[serde(borrow)]
        rcode: Field<'a>,
        #[serde(borrow)]
        rdata: Field<'a>,
        #[serde(borrow)]
        ttl: Field<'a>,
        #[serde(borrow)]
        queries: Seq<Nested<Answer<'a>>>,
        #[serde(borrow)]
        answers: Seq<Nested<Answer<'a>>>,
        #[serde(borrow)]
        grouped: Nested<Entries<'a, Seq<Field<'a>>>>,
    }

    /// An entry of `answers` (or of `queries`, which use `rrname` and `rrtype`).
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Answer<'a> {
        #[serde(borrow)]
        rrname: Field<'a>,
        #[serde(borrow)]
        rrtype: Field<'a>,
        #[serde(borrow)]
        rdata: Field<'a>,
        #[serde(borrow)]
        ttl: Field<'a>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Http<'a> {
        #[serde(borrow)]
        hostname: Field<'a>,
        #[serde(borrow)]
        url: Field<'a>,
        #[serde(borrow)]
        http_method: Field<'a>,
        #[serde(borrow)]
        status: Field<'a>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Tls<'a> {
        #[serde(borrow)]
        sni: Field<'a>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Alert<'a> {
        #[serde(borrow)]
        signature: Field<'a>,
        #[serde(borrow)]
        action: Field<'a>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Anomaly<'a> {
        #[serde(borrow)]
        event: Field<'a>,
    }

    impl Refuse for Record<'_> {
        const REFUSE: Option<fn(&str) -> bool> = Some(|key| key.contains('.'));
    }
    impl Refuse for Counters<'_> {}
    impl Refuse for Dns<'_> {}
    impl Refuse for Answer<'_> {}
    impl Refuse for Http<'_> {}
    impl Refuse for Tls<'_> {}
    impl Refuse for Alert<'_> {}
    impl Refuse for Anomaly<'_> {}

    /// `json::get(o, "section.field")` when the section is nested.
    fn inner<'r, 'a, T>(
        section: &'r Nested<T>,
        field: fn(&'r T) -> &'r Field<'a>,
    ) -> Option<&'r Field<'a>> {
        section.object().map(field).and_then(Field::get)
    }

    pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Fast<Option<Str>> {
        f::object_with(raw, |r: &Record| map(r, ev))
    }

    fn map(r: &Record, ev: &mut Event) -> Fast<Option<Str>> {
        observer(ev, "ids", "OISF", "Suricata");
        ev.timestamp = f::datetime(r.timestamp.get())?;
        let event_type = f::text(r.event_type.get())?.ok_or(Bail)?;
        categorize_event(ev, &event_type);

        ev.source.ip = f::ip(r.src_ip.get())?;
        ev.source.port = f::uint(r.src_port.get())?;
        ev.destination.ip = f::ip(r.dest_ip.get())?;
        ev.destination.port = f::uint(r.dest_port.get())?;
        if let Some(p) = f::text(r.proto.get())? {
            set_transport(ev, &p);
        }
        if matches!(ev.network.iana_number, Some(1 | 58)) && ev.source.port.is_none() {
            ev.source.port = f::uint(r.icmp_type.get())?;
            ev.destination.port = f::uint(r.icmp_code.get())?;
        }

        ev.session.id = f::text(r.flow_id.get())?;
        ev.network.community_id = f::text(r.community_id.get())?;
        if let Some(p) = f::text(r.app_proto.get())? {
            ev.network.protocol = app_protocol(&p);
        }

        ev.source.bytes = f::uint(inner(&r.flow, |c| &c.bytes_toserver))?;
        ev.destination.bytes = f::uint(inner(&r.flow, |c| &c.bytes_toclient))?;
        ev.source.packets = f::uint(inner(&r.flow, |c| &c.pkts_toserver))?;
        ev.destination.packets = f::uint(inner(&r.flow, |c| &c.pkts_toclient))?;
        if ev.source.bytes.is_none() {
            ev.source.bytes = f::uint(inner(&r.netflow, |c| &c.bytes))?;
            ev.source.packets = f::uint(inner(&r.netflow, |c| &c.pkts))?;
        }
        for section in [&r.flow, &r.netflow] {
            let start = f::text(inner(section, |c| &c.start))?;
            let end = f::text(inner(section, |c| &c.end))?;
            if let (Some(s), Some(e)) = (start, end) {
                let s = timefmt::parse_datetime(&s).ok_or(Bail)?;
                let e = timefmt::parse_datetime(&e).ok_or(Bail)?;
                ev.event.duration = Some(e.nanos_since(s).max(0));
                break;
            }
        }

        match &r.dns {
            Nested::Absent | Nested::Null => {}
            Nested::Object(d) => dns(d, ev)?,
            Nested::Other => return Err(Bail),
        }
        if r.http.is_some() {
            ev.network.protocol.get_or_insert_with(|| "http".into());
            let host = f::text(inner(&r.http, |h| &h.hostname))?;
            let url = f::text(inner(&r.http, |h| &h.url))?;
            super::super::set_url(ev, host, url);
            ev.http.request.method = f::text(inner(&r.http, |h| &h.http_method))?;
            ev.http.response.status_code = f::uint(inner(&r.http, |h| &h.status))?;
        }
        if r.tls.is_some() {
            ev.network.protocol.get_or_insert_with(|| "tls".into());
            ev.tls.server_name = f::text(inner(&r.tls, |t| &t.sni))?;
        }
        if r.alert.is_some() {
            ev.rule.name = f::text(inner(&r.alert, |a| &a.signature))?;
            ev.event.action = f::text(inner(&r.alert, |a| &a.action))?;
        }
        if r.anomaly.is_some() {
            ev.event.action = f::text(inner(&r.anomaly, |a| &a.event))?;
        }
        Ok(None)
    }

    fn dns(d: &Dns, ev: &mut Event) -> Fast<()> {
        ev.network.protocol.get_or_insert_with(|| "dns".into());
        let per_answer_record = d.rdata.get().is_some();
        let question = match &d.queries {
            Seq::Items(qs) => qs.first().and_then(Nested::object),
            _ => None,
        };
        let (rrname, rrtype) = match question {
            Some(q) => (&q.rrname, &q.rrtype),
            None => (&d.rrname, &d.rrtype),
        };
        ev.dns.question.name = f::text(rrname.get())?;
        if !per_answer_record {
            ev.dns.question.kind = f::text(rrtype.get())?;
        }
        ev.dns.response_code = f::text(d.rcode.get())?;

        match (&d.answers, &d.grouped) {
            (Seq::Items(answers), _) => {
                for a in answers {
                    let Nested::Object(a) = a else {
                        return Err(Bail);
                    };
                    push_answer(&a.rdata, &a.rrtype, &a.ttl, ev)?;
                }
            }
            (Seq::Other, _) => return Err(Bail),
            (_, Nested::Object(Entries(groups))) => match groups.as_slice() {
                [] => {}
                // The DOM path visits several record types in its map's key order; one needs no order.
                [(rrtype, data)] => {
                    let Seq::Items(items) = data else {
                        return Err(Bail);
                    };
                    for item in items {
                        if let Field::Str(s) = item {
                            ev.dns.answers.push(DnsAnswer {
                                data: Str::from(&**s),
                                kind: Some(Str::from(&**rrtype)),
                                ttl: None,
                            });
                        }
                    }
                }
                _ => return Err(Bail),
            },
            (_, Nested::Other) => return Err(Bail),
            _ if per_answer_record => push_answer(&d.rdata, &d.rrtype, &d.ttl, ev)?,
            _ => {}
        }
        Ok(())
    }

    fn push_answer(rdata: &Field, rrtype: &Field, ttl: &Field, ev: &mut Event) -> Fast<()> {
        let Some(data) = f::text(rdata.get())? else {
            return Ok(());
        };
        let kind = f::text(rrtype.get())?;
        let ttl = f::uint(ttl.get())?;
        ev.dns.answers.push(DnsAnswer { data, kind, ttl });
        Ok(())
    }
}
