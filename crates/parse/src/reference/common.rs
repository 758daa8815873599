//! The implementation before the parsing optimization (see `mod.rs`).

use storyline_model::community_id::protocol_number;
use storyline_model::{Event, Str};

/// Sets `network.transport` (lower-case name) and `network.iana_number` from a protocol name or number
/// as the sensor wrote it ("TCP", "tcp", "6", "IPv6-ICMP").
pub(crate) fn set_transport(ev: &mut Event, proto: &str) {
    let p = proto.trim();
    if p.is_empty() || p == "-" {
        return;
    }
    let name: Str = if p.bytes().all(|b| b.is_ascii_digit()) {
        match p.parse::<u16>().ok() {
            Some(n) => match transport_name(n) {
                Some(name) => name.into(),
                // Keep the number: it is still a valid transport for the Community ID.
                None => n.to_string().into(),
            },
            None => p.into(),
        }
    } else {
        p.to_ascii_lowercase().into()
    };
    ev.network.iana_number = protocol_number(&name);
    ev.network.transport = Some(name);
}

fn transport_name(n: u16) -> Option<&'static str> {
    Some(match n {
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "ipv6-icmp",
        132 => "sctp",
        _ => return None,
    })
}

/// Application protocol names differ between sensors (Zeek says `ssl` where Suricata says `tls`).
pub(crate) fn app_protocol(s: &str) -> Option<Str> {
    // Zeek lists every service it recognized ("ssl,http"); the first is the outermost.
    let first = s.split(',').next().unwrap_or("").trim();
    match first.to_ascii_lowercase().as_str() {
        "" | "-" | "failed" | "unknown" => None,
        "ssl" => Some("tls".into()),
        other => Some(other.into()),
    }
}

/// `event.kind/category/type/dataset`, the ECS categorization every format sets.
pub(crate) fn categorize(ev: &mut Event, kind: &str, kind_type: &str, dataset: &str) {
    ev.event.kind = Some(kind.into());
    ev.event.category = Some("network".into());
    ev.event.kind_type = Some(kind_type.into());
    ev.event.dataset = Some(dataset.into());
}

pub(crate) fn observer(ev: &mut Event, kind: &str, vendor: &str, product: &str) {
    ev.observer.kind = Some(kind.into());
    ev.observer.vendor = Some(vendor.into());
    ev.observer.product = Some(product.into());
}

/// Firewall verdicts to ECS `event.outcome`: the connection attempt succeeded or was refused.
pub(crate) fn outcome_of_verdict(action: &str) -> Option<Str> {
    let a = action.to_ascii_lowercase();
    let outcome = match a.as_str() {
        "accept" | "allow" | "allowed" | "pass" => "success",
        "reject" | "deny" | "drop" | "blocked" | "block" | "reset-client" | "reset-server"
        | "reset-both" | "drop-icmp" | "drop-all-packets" => "failure",
        _ => return None,
    };
    Some(outcome.into())
}
