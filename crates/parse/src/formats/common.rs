//! Normalizations shared by formats, so that every sensor's report of one flow ends up with the same
//! spelling (correlation compares these values as strings).

use storyline_model::community_id::protocol_number;
use storyline_model::{Event, Str};

/// Sets `network.transport` (lower-case name) and `network.iana_number` from a protocol name or number
/// as the sensor wrote it ("TCP", "tcp", "6", "IPv6-ICMP").
pub(crate) fn set_transport(ev: &mut Event, proto: &str) {
    let p = crate::trim(proto);
    if p.is_empty() || p == "-" {
        return;
    }
    let name: Str = if p.bytes().all(|b| b.is_ascii_digit()) {
        match p.parse::<u16>().ok() {
            Some(n) => number_name(n),
            None => p.into(),
        }
    } else {
        with_lowercase(p, |l| Str::from(l))
    };
    ev.network.iana_number = protocol_number(&name);
    ev.network.transport = Some(name);
}

/// [`set_transport`] for a protocol number (the same as passing its decimal text).
pub(crate) fn set_transport_number(ev: &mut Event, n: u16) {
    let name = number_name(n);
    ev.network.iana_number = protocol_number(&name);
    ev.network.transport = Some(name);
}

fn number_name(n: u16) -> Str {
    match transport_name(n) {
        Some(name) => name.into(),
        // Keep the number: it is still a valid transport for the Community ID.
        None => n.to_string().into(),
    }
}

/// Calls `f` with `s` in ASCII lower case, without allocating for short text.
fn with_lowercase<R>(s: &str, f: impl FnOnce(&str) -> R) -> R {
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return f(s);
    }
    let mut buf = [0u8; 32];
    if let Some(dst) = buf.get_mut(..s.len()) {
        dst.copy_from_slice(s.as_bytes());
        dst.make_ascii_lowercase();
        // Lower-casing ASCII letters keeps the text valid UTF-8.
        if let Ok(lower) = std::str::from_utf8(dst) {
            return f(lower);
        }
    }
    f(&s.to_ascii_lowercase())
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
    let first = crate::trim(s.split(',').next().unwrap_or(""));
    with_lowercase(first, |lower| match lower {
        "" | "-" | "failed" | "unknown" => None,
        "ssl" => Some("tls".into()),
        other => Some(other.into()),
    })
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
    let outcome = with_lowercase(action, |a| match a {
        "accept" | "allow" | "allowed" | "pass" => Some("success"),
        "reject" | "deny" | "drop" | "blocked" | "block" | "reset-client" | "reset-server"
        | "reset-both" | "drop-icmp" | "drop-all-packets" => Some("failure"),
        _ => None,
    })?;
    Some(outcome.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_are_normalized() {
        let mut e = Event::default();
        set_transport(&mut e, "TCP");
        assert_eq!(
            (e.network.transport.as_deref(), e.network.iana_number),
            (Some("tcp"), Some(6))
        );
        set_transport(&mut e, "17");
        assert_eq!(
            (e.network.transport.as_deref(), e.network.iana_number),
            (Some("udp"), Some(17))
        );
        set_transport(&mut e, "IPv6-ICMP");
        assert_eq!(e.network.iana_number, Some(58));
        set_transport(&mut e, "103");
        assert_eq!(
            (e.network.transport.as_deref(), e.network.iana_number),
            (Some("103"), Some(103))
        );
        set_transport(&mut e, "99999");
        assert_eq!(
            (e.network.transport.as_deref(), e.network.iana_number),
            (Some("99999"), None)
        );
    }

    #[test]
    fn lowercase_like_std() {
        for s in [
            "",
            "tcp",
            "TCP",
            "IPv6-ICMP",
            "ÉtÉ",
            "A".repeat(31).as_str(),
            &"B".repeat(40),
        ] {
            assert_eq!(
                with_lowercase(s, |l| l.to_owned()),
                s.to_ascii_lowercase(),
                "{s}"
            );
        }
        let mut a = Event::default();
        let mut b = Event::default();
        for n in [0u16, 1, 6, 17, 58, 103, 255, 256, 65535] {
            set_transport(&mut a, &n.to_string());
            set_transport_number(&mut b, n);
            assert_eq!(a, b, "{n}");
        }
    }

    #[test]
    fn app_protocols() {
        assert_eq!(app_protocol("ssl,http").as_deref(), Some("tls"));
        assert_eq!(app_protocol("DNS").as_deref(), Some("dns"));
        assert_eq!(app_protocol("failed"), None);
    }
}
