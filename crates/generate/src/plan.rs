//! Which sensors see a session, which records each writes, and when each record comes into being.
//!
//! Visibility follows the topology rather than a flat coin flip, because correlation quality depends on
//! it: the endpoint agent sees only its own host, the firewall only traffic that crosses zones, Zeek taps
//! the inside, Suricata sits at the edge and the DMZ (so it sees NATed sessions post-NAT), and the VPC
//! flow logs see only what leaves through the NAT.

use crate::session::Session;
use crate::world::{Client, Zone};
use rand::rngs::SmallRng;
use rand::Rng;
use storyline_model::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sensor {
    Sysmon,
    Panos,
    Zeek,
    Suricata,
    AwsVpc,
}

impl Sensor {
    pub const ALL: [Sensor; 5] = [
        Sensor::Sysmon,
        Sensor::Panos,
        Sensor::Zeek,
        Sensor::Suricata,
        Sensor::AwsVpc,
    ];

    pub fn format(self) -> &'static str {
        match self {
            Sensor::Sysmon => "sysmon",
            Sensor::Panos => "panos",
            Sensor::Zeek => "zeek",
            Sensor::Suricata => "suricata",
            Sensor::AwsVpc => "aws_vpc",
        }
    }

    /// The one instance of each sensor in the simulated network.
    pub fn name(self) -> &'static str {
        match self {
            Sensor::Sysmon => "edr-agent",
            Sensor::Panos => "fw-edge-1",
            Sensor::Zeek => "zeek-core",
            Sensor::Suricata => "suricata-dmz",
            Sensor::AwsVpc => "vpc-flowlogs",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Sysmon event 3 on the client.
    SysmonConnect,
    PanosTraffic {
        reversed: bool,
    },
    ZeekConn,
    /// Zeek's conn record of the DNS lookup's own UDP flow (same uid as the dns record).
    ZeekDnsConn,
    ZeekDns,
    ZeekHttp,
    ZeekSsl,
    SuricataFlow,
    SuricataTls,
    SuricataAlert,
    VpcFlow {
        reversed: bool,
    },
}

impl Kind {
    pub fn sensor(self) -> Sensor {
        match self {
            Kind::SysmonConnect => Sensor::Sysmon,
            Kind::PanosTraffic { .. } => Sensor::Panos,
            Kind::ZeekConn | Kind::ZeekDnsConn | Kind::ZeekDns | Kind::ZeekHttp | Kind::ZeekSsl => {
                Sensor::Zeek
            }
            Kind::SuricataFlow | Kind::SuricataTls | Kind::SuricataAlert => Sensor::Suricata,
            Kind::VpcFlow { .. } => Sensor::AwsVpc,
        }
    }

    pub fn is_reversed(self) -> bool {
        matches!(
            self,
            Kind::PanosTraffic { reversed: true } | Kind::VpcFlow { reversed: true }
        )
    }
}

/// A record to write: its kind, the true time of what it states, and the true time the sensor
/// produces it (before delivery). `emitted >= occurred` always, so nothing arrives before it happened.
#[derive(Clone, Copy, Debug)]
pub struct Planned {
    pub kind: Kind,
    pub occurred: Timestamp,
    pub emitted: Timestamp,
}

/// Per-run planning parameters derived from the configuration.
pub struct Planner {
    pub enabled: [bool; 5],
    pub reversed: f64,
    /// Probability that the VPC logs a session as a pair of records (one per direction).
    vpc_pair: f64,
    /// Probability that a lone VPC record is the B→A one.
    vpc_single_reversed: f64,
}

const MS: i64 = 1_000_000;

fn after(t: Timestamp, lo_ms: i64, hi_ms: i64, rng: &mut SmallRng) -> Timestamp {
    Timestamp(t.as_nanos() + rng.random_range(lo_ms * MS..=hi_ms * MS))
}

impl Planner {
    pub fn new(enabled: [bool; 5], reversed: f64) -> Self {
        let (vpc_pair, vpc_single_reversed) = vpc_split(reversed);
        Planner {
            enabled,
            reversed,
            vpc_pair,
            vpc_single_reversed,
        }
    }

    fn on(&self, s: Sensor) -> bool {
        self.enabled[s.index()]
    }

    pub fn plan(&self, rng: &mut SmallRng, s: &Session, client: &Client) -> Vec<Planned> {
        let mut out = Vec::with_capacity(8);
        let (start, end) = (s.start, s.end());
        // Flow summaries state the session start but are written once the session is over.
        let summary = |kind: Kind, rng: &mut SmallRng| Planned {
            kind,
            occurred: start,
            emitted: after(end, 0, 1000, rng),
        };
        // Application-layer records are written right after what they describe.
        let instant =
            |kind: Kind, occurred: Timestamp, lo: i64, hi: i64, rng: &mut SmallRng| Planned {
                kind,
                occurred,
                emitted: after(occurred, lo, hi, rng),
            };

        if let Some(d) = &s.dns {
            if self.on(Sensor::Zeek) && rng.random_bool(0.9) {
                // dns.log states the query time and is written when the answer comes back.
                let answered = Timestamp(d.time.as_nanos() + d.rtt_ns);
                out.push(Planned {
                    kind: Kind::ZeekDns,
                    occurred: d.time,
                    emitted: after(answered, 0, 5, rng),
                });
                out.push(Planned {
                    kind: Kind::ZeekDnsConn,
                    occurred: d.time,
                    emitted: after(answered, 5, 500, rng),
                });
            }
        }
        if self.on(Sensor::Sysmon) && client.has_agent && rng.random_bool(0.95) {
            // Event log entry created up to 15 ms after Sysmon saw the first packet.
            let first_packet = after(start, 0, 2, rng);
            out.push(instant(Kind::SysmonConnect, first_packet, 20, 60, rng));
        }
        let fw_sees = match s.zone {
            Zone::Internet => 0.98,
            Zone::Dmz => 0.95,
            Zone::DataCenter => 0.6,
        };
        if self.on(Sensor::Panos) && rng.random_bool(fw_sees) {
            let reversed = rng.random_bool(self.reversed);
            out.push(summary(Kind::PanosTraffic { reversed }, rng));
        }
        if self.on(Sensor::Zeek) && rng.random_bool(0.6) {
            if s.service.app == Some("ssl") {
                let hello = after(start, 1, 40, rng);
                out.push(instant(Kind::ZeekSsl, hello, 10, 300, rng));
            }
            if s.http.is_some() {
                let request = Timestamp(start.as_nanos() + (s.duration_ns / 10).min(200 * MS));
                out.push(instant(Kind::ZeekHttp, request, 20, 300, rng));
            }
            out.push(summary(Kind::ZeekConn, rng));
        }
        let ids_sees = match s.zone {
            Zone::Internet => 0.55,
            Zone::Dmz => 0.7,
            Zone::DataCenter => 0.0,
        };
        if self.on(Sensor::Suricata) && rng.random_bool(ids_sees) {
            if s.service.app == Some("ssl") {
                let hello = after(start, 20, 150, rng);
                out.push(instant(Kind::SuricataTls, hello, 0, 50, rng));
            }
            if rng.random_bool(0.01) {
                let hit = after(start, 50, 400, rng);
                out.push(instant(Kind::SuricataAlert, hit, 0, 100, rng));
            }
            out.push(summary(Kind::SuricataFlow, rng));
        }
        if self.on(Sensor::AwsVpc) && s.nat.is_some() && rng.random_bool(0.95) {
            let p = summary(Kind::VpcFlow { reversed: false }, rng);
            if rng.random_bool(self.vpc_pair) {
                out.push(p);
                out.push(Planned {
                    kind: Kind::VpcFlow { reversed: true },
                    ..p
                });
            } else {
                let reversed = rng.random_bool(self.vpc_single_reversed);
                out.push(Planned {
                    kind: Kind::VpcFlow { reversed },
                    ..p
                });
            }
        }
        // A session nobody saw is no story at all; rather than lose it, let a sensor that could
        // plausibly see it report it (the inside tap sees everything when enabled).
        if out.is_empty() {
            if self.on(Sensor::Zeek) {
                out.push(summary(Kind::ZeekConn, rng));
            } else if self.on(Sensor::Panos) {
                let reversed = rng.random_bool(self.reversed);
                out.push(summary(Kind::PanosTraffic { reversed }, rng));
            }
        }
        out
    }
}

/// Real VPC flow logs often hold one record per direction. Pairs contribute one reversed record in two,
/// which alone would pull the reversed share towards ½; so pairs are used sparingly and lone records are
/// reversed with the probability that brings the overall share back to `r`:
/// share = (pair + (1 − pair)·q) / (1 + pair) = r.
pub fn vpc_split(r: f64) -> (f64, f64) {
    let r = r.clamp(0.0, 1.0);
    let pair = 0.5 * r.min(1.0 - r) / r.max(1.0 - r);
    let q = ((r * (1.0 + pair) - pair) / (1.0 - pair)).clamp(0.0, 1.0);
    (pair, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpc_split_keeps_the_reversed_share() {
        for r in [0.0, 0.05, 0.2, 0.5, 0.7, 1.0] {
            let (p, q) = vpc_split(r);
            let share = (p + (1.0 - p) * q) / (1.0 + p);
            assert!((share - r).abs() < 1e-9, "r={r} p={p} q={q} share={share}");
            assert!((0.0..=0.5).contains(&p) && (0.0..=1.0).contains(&q));
        }
        assert!(vpc_split(0.2).0 > 0.0, "pairs occur at the default share");
    }
}
