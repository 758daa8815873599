//! One writer per sensor format. Each turns a planned record of a session into the sensor's native
//! text, with every timestamp on that sensor's (skewed) clock.

pub mod aws_vpc;
pub mod panos;
pub mod suricata;
pub mod sysmon;
pub mod zeek;

use crate::plan::Kind;
use crate::session::Session;
use crate::text::Obj;
use crate::world::Client;
use rand::rngs::SmallRng;
use storyline_model::Timestamp;

/// What a writer produces: a JSON object (still open, so a large field can be appended) or a text line.
pub enum Body {
    Json(Obj),
    Line(String),
}

pub struct Written {
    pub body: Body,
    /// The record's own id where the format has one; otherwise the event id is the content hash.
    pub own_id: Option<String>,
    /// The event time the record states (sensor clock).
    pub time: Timestamp,
}

/// Counters that real sensors keep across sessions.
pub struct SensorState {
    /// Next Windows event log record number, per client host: each host's log counts on its own.
    pub sysmon_record: Vec<u64>,
    pub panos_seqno: u64,
    pub panos_session: u32,
}

impl SensorState {
    pub fn new(clients: usize, rng: &mut SmallRng) -> Self {
        use rand::Rng;
        SensorState {
            sysmon_record: (0..clients)
                .map(|_| rng.random_range(10_000..5_000_000))
                .collect(),
            panos_seqno: rng.random_range(1_000_000_000..9_000_000_000),
            panos_session: rng.random_range(10_000..500_000),
        }
    }
}

/// Everything a writer needs about one record.
pub struct Ctx<'a> {
    pub s: &'a Session,
    pub client: &'a Client,
    pub kind: Kind,
    /// True time of what the record states (for records describing an instant: a handshake, a
    /// request, an alert). Flow summaries state the session's start and end instead.
    pub occurred: Timestamp,
    /// This sensor's clock offset.
    pub skew_ns: i64,
    /// Run seed, mixed into sensor-local identifiers (uids, flow ids) so they differ between runs.
    pub seed: u64,
}

impl Ctx<'_> {
    /// A true time as this sensor's clock shows it.
    pub fn clock(&self, t: Timestamp) -> Timestamp {
        Timestamp(t.as_nanos() + self.skew_ns)
    }

    /// Stable per-(session, purpose) value, so records of one session written at different times agree
    /// on shared identifiers without keeping state.
    pub fn mix(&self, salt: u64) -> u64 {
        splitmix(self.seed ^ splitmix(self.s.no.wrapping_mul(0x9E37_79B9) ^ salt))
    }
}

pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn write(ctx: &Ctx, st: &mut SensorState, rng: &mut SmallRng) -> Written {
    match ctx.kind {
        Kind::SysmonConnect => sysmon::connect(ctx, st, rng),
        Kind::PanosTraffic { reversed } => panos::traffic(ctx, st, reversed),
        Kind::ZeekConn => zeek::conn(ctx),
        Kind::ZeekDnsConn => zeek::dns_conn(ctx),
        Kind::ZeekDns => zeek::dns(ctx),
        Kind::ZeekHttp => zeek::http(ctx),
        Kind::ZeekSsl => zeek::ssl(ctx, rng),
        Kind::SuricataFlow => suricata::flow(ctx),
        Kind::SuricataTls => suricata::tls(ctx, rng),
        Kind::SuricataAlert => suricata::alert(ctx, rng),
        Kind::VpcFlow { reversed } => aws_vpc::flow(ctx, reversed),
    }
}

/// Name of the oversized field each JSON format carries when a record is made large: fields those
/// sensors really emit with bulky content.
pub fn large_field(kind: Kind) -> Option<&'static str> {
    match kind.sensor() {
        crate::plan::Sensor::Suricata => Some("payload_printable"),
        crate::plan::Sensor::Zeek => Some("post_body"),
        crate::plan::Sensor::Sysmon => Some("message"),
        // Positional text lines: an extra column would shift or break the format.
        crate::plan::Sensor::Panos | crate::plan::Sensor::AwsVpc => None,
    }
}
