//! One true session (= one ground-truth story): who talked to whom, when, how much, and what each
//! application layer looked like. Sensors only ever describe parts of this; nothing here is sensor
//! specific.

use crate::world::{self, Client, Service, Transport, World, Zone, DNS, NAT_POOL, RESOLVER};
use rand::rngs::SmallRng;
use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use std::net::Ipv4Addr;
use storyline_model::Timestamp;

/// Sessions are capped so that an on-time end-of-flow record never looks a minute late: the
/// late/on-time split stays measurable from the output alone.
pub const MAX_DURATION_NS: i64 = 30_000_000_000;
/// The DNS lookup precedes the connection by at most this much; with [`MAX_DURATION_NS`] it bounds
/// how early a session's first record can be relative to its start.
pub const MAX_DNS_LEAD_NS: i64 = 800_000_000;

pub struct DnsLookup {
    /// When the client sent the query.
    pub time: Timestamp,
    pub rtt_ns: i64,
    pub client_port: u16,
    pub trans_id: u16,
    pub ttl: u32,
}

pub struct HttpTxn {
    pub method: &'static str,
    pub uri: String,
    pub status: u16,
    pub user_agent: &'static str,
    pub request_len: u64,
    pub response_len: u64,
    pub mime: &'static str,
}

pub struct Session {
    /// Position in generation order (also the order of `start`).
    pub no: u64,
    pub client: usize,
    pub client_ip: Ipv4Addr,
    pub client_port: u16,
    pub server_ip: Ipv4Addr,
    pub server_name: String,
    pub zone: Zone,
    pub service: Service,
    /// Public source address and port after the firewall's NAT.
    pub nat: Option<(Ipv4Addr, u16)>,
    pub start: Timestamp,
    pub duration_ns: i64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub pkts_out: u64,
    pub pkts_in: u64,
    /// Index into [`world::PROGRAMS`].
    pub program: usize,
    pub dns: Option<DnsLookup>,
    pub http: Option<HttpTxn>,
    /// TCP reset by the server instead of an orderly close.
    pub reset: bool,
}

impl Session {
    pub fn end(&self) -> Timestamp {
        Timestamp(self.start.as_nanos() + self.duration_ns)
    }

    pub fn transport(&self) -> Transport {
        self.service.transport
    }

    pub fn client<'w>(&self, w: &'w World) -> &'w Client {
        &w.clients[self.client]
    }
}

const USER_AGENTS: [&str; 3] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Microsoft-CryptoAPI/10.0",
];
const PATHS: [&str; 8] = [
    "/",
    "/index.html",
    "/api/v1/status",
    "/static/app.js",
    "/images/logo.png",
    "/login",
    "/update/check",
    "/favicon.ico",
];

pub struct SessionSampler {
    duration: LogNormal<f64>,
    bytes_out: LogNormal<f64>,
    bytes_in: LogNormal<f64>,
}

impl SessionSampler {
    pub fn new() -> Self {
        SessionSampler {
            // Median 0.6 s, long tail (capped at MAX_DURATION_NS).
            duration: LogNormal::new((0.6f64).ln(), 1.3).expect("valid"),
            bytes_out: LogNormal::new((900f64).ln(), 1.0).expect("valid"),
            bytes_in: LogNormal::new((9000f64).ln(), 1.6).expect("valid"),
        }
    }

    pub fn sample(
        &self,
        rng: &mut SmallRng,
        world: &World,
        no: u64,
        start: Timestamp,
        nat_share: f64,
        dns_share: f64,
    ) -> Session {
        let (ci, client) = world.pick_client(rng);
        // NAT is how clients reach the internet, so "NATed" and "internet-bound" are the same draw;
        // everything else stays inside (east-west to the data center, or into the DMZ).
        let server = if rng.random_bool(nat_share) {
            world.pick_internet(rng)
        } else if rng.random_bool(0.55) {
            &world.datacenter[rng.random_range(0..world.datacenter.len())]
        } else {
            &world.dmz[rng.random_range(0..world.dmz.len())]
        };
        let service = server.services[rng.random_range(0..server.services.len())];
        let nat = (server.zone == Zone::Internet).then(|| {
            (
                NAT_POOL[rng.random_range(0..NAT_POOL.len())],
                rng.random_range(1024..=65535u16),
            )
        });

        let secs = if service.port == 123 {
            rng.random_range(0.005..0.08)
        } else {
            self.duration.sample(rng)
        };
        let duration_ns = ((secs * 1e9) as i64).clamp(1_000_000, MAX_DURATION_NS);
        let (mut bytes_out, mut bytes_in) = (
            self.bytes_out.sample(rng).min(5e7) as u64 + 40,
            self.bytes_in.sample(rng).min(5e8) as u64 + 40,
        );
        if service.port == 123 {
            (bytes_out, bytes_in) = (48, 48);
        }
        let pkts_out = 1 + bytes_out / rng.random_range(400..1400);
        let pkts_in = 1 + bytes_in / rng.random_range(900..1460);

        let dns = (rng.random_bool(dns_share)).then(|| DnsLookup {
            time: Timestamp(start.as_nanos() - rng.random_range(100_000_000..=MAX_DNS_LEAD_NS)),
            rtt_ns: rng.random_range(300_000..60_000_000),
            client_port: rng.random_range(49152..=65535),
            trans_id: rng.random(),
            ttl: [60, 300, 300, 3600, 86400][rng.random_range(0..5)],
        });
        let http = (service.app == Some("http")).then(|| HttpTxn {
            method: if rng.random_bool(0.85) { "GET" } else { "POST" },
            uri: PATHS[rng.random_range(0..PATHS.len())].to_string(),
            status: [200, 200, 200, 200, 304, 301, 404][rng.random_range(0..7)],
            user_agent: USER_AGENTS[rng.random_range(0..USER_AGENTS.len())],
            request_len: 0,
            response_len: bytes_in.saturating_sub(300),
            mime: ["text/html", "application/json", "image/png"][rng.random_range(0..3)],
        });

        Session {
            no,
            client: ci,
            client_ip: client.ip,
            client_port: rng.random_range(49152..=65535),
            server_ip: server.ip,
            server_name: server.name.clone(),
            zone: server.zone,
            service,
            nat,
            start,
            duration_ns,
            bytes_out,
            bytes_in,
            pkts_out,
            pkts_in,
            program: world::weighted_program(rng),
            dns,
            http,
            reset: service.transport == Transport::Tcp && rng.random_bool(0.03),
        }
    }
}

impl Default for SessionSampler {
    fn default() -> Self {
        Self::new()
    }
}

/// The DNS lookup's own flow: client → internal resolver, UDP 53.
pub fn dns_flow(s: &Session, d: &DnsLookup) -> (Ipv4Addr, u16, Ipv4Addr, u16, Service) {
    (s.client_ip, d.client_port, RESOLVER, 53, DNS)
}
