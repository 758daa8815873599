//! The streaming generator: sessions in event-time order → planned records → native text in an envelope
//! → arrival order.

use crate::arrival::ArrivalQueue;
use crate::config::GenConfig;
use crate::formats::{self, Body, Ctx, SensorState};
use crate::plan::{Planner, Sensor};
use crate::session::{SessionSampler, MAX_DNS_LEAD_NS};
use crate::text::push_json_str;
use crate::world::World;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};
use storyline_model::ids::content_event_id;
use storyline_model::Timestamp;

/// One event as a collector receives it, with its ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// When the collector receives it: true event time + delivery delay + lateness.
    pub arrival: Timestamp,
    /// The event time the record states, on the writing sensor's (skewed) clock, at the record's own
    /// precision (whole seconds for panos and aws_vpc).
    pub event_time: Timestamp,
    /// `{"format":..,"sensor":..,"record":..}` without a trailing newline.
    pub envelope: String,
    /// The id Storyline's parser assigns to this record.
    pub event_id: String,
    /// Ground-truth story (session) id, `s000123`.
    pub story: String,
    pub format: &'static str,
    pub sensor: String,
    /// Delivered 1 minute to `--max-late` after it happened.
    pub late: bool,
    /// A firewall or flow-exporter record that reports the session B→A.
    pub reversed: bool,
}

pub struct Generator {
    cfg: GenConfig,
    world: World,
    rng: SmallRng,
    sampler: SessionSampler,
    planner: Planner,
    state: SensorState,
    skew_ns: [i64; 5],
    gap: Exp<f64>,
    queue: ArrivalQueue,
    next_start: Timestamp,
    sessions: u64,
    stories: u64,
    remaining: u64,
    /// Consecutive sessions no enabled sensor could see; guards against selections that can never
    /// produce an event (e.g. only aws_vpc with `--nat 0`).
    unseen_streak: u32,
    exhausted: bool,
}

const MAX_UNSEEN_STREAK: u32 = 100_000;
const MAX_DELIVERY_DELAY_NS: i64 = 2_000_000_000;
const MIN_LATENESS_NS: i64 = 60_000_000_000;

impl Generator {
    pub fn new(cfg: &GenConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let world = World::new(&mut rng);
        let state = SensorState::new(world.clients.len(), &mut rng);
        let skew = cfg.skew.as_nanos().min(i64::MAX as u128 / 2) as i64;
        let skew_ns = std::array::from_fn(|_| {
            if skew == 0 {
                0
            } else {
                rng.random_range(-skew..=skew)
            }
        });
        let enabled = Sensor::ALL.map(|s| cfg.wants(s.format(), s.name()));
        Generator {
            planner: Planner::new(enabled, cfg.reversed),
            sampler: SessionSampler::new(),
            gap: Exp::new(cfg.rate).expect("rate is positive"),
            queue: ArrivalQueue::default(),
            // The first lookup may precede its session; start late enough that no event precedes --start.
            next_start: Timestamp(cfg.start.as_nanos() + MAX_DNS_LEAD_NS),
            sessions: 0,
            stories: 0,
            remaining: cfg.events,
            unseen_streak: 0,
            exhausted: cfg.events == 0,
            cfg: cfg.clone(),
            world,
            rng,
            state,
            skew_ns,
        }
    }

    /// Stories (sessions with at least one event) generated so far.
    pub fn stories(&self) -> u64 {
        self.stories
    }

    /// Events generated but not yet released in arrival order.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Each sensor's clock offset in nanoseconds, indexed like [`Sensor::ALL`].
    pub fn skews(&self) -> [i64; 5] {
        self.skew_ns
    }

    fn generate_session(&mut self) {
        let start = self.next_start;
        let gap_ns = (self.gap.sample(&mut self.rng) * 1e9) as i64;
        self.next_start = Timestamp(start.as_nanos() + gap_ns);
        let no = self.sessions;
        self.sessions += 1;
        let s = self.sampler.sample(
            &mut self.rng,
            &self.world,
            no,
            start,
            self.cfg.nat,
            self.cfg.dns,
        );
        let client = s.client(&self.world);
        let mut plan = self.planner.plan(&mut self.rng, &s, client);
        if plan.is_empty() {
            self.unseen_streak += 1;
            if self.unseen_streak >= MAX_UNSEEN_STREAK {
                self.exhausted = true;
            }
            return;
        }
        self.unseen_streak = 0;
        plan.truncate(self.remaining.min(plan.len() as u64) as usize);
        self.remaining -= plan.len() as u64;
        if self.remaining == 0 {
            self.exhausted = true;
        }
        let story = format!("s{:06}", self.stories);
        self.stories += 1;

        for p in plan {
            let sensor = p.kind.sensor();
            let ctx = Ctx {
                s: &s,
                client,
                kind: p.kind,
                occurred: p.occurred,
                skew_ns: self.skew_ns[sensor.index()],
                seed: self.cfg.seed,
            };
            let w = formats::write(&ctx, &mut self.state, &mut self.rng);
            let (format, name) = (sensor.format(), sensor.name());

            let mut envelope = String::with_capacity(512);
            envelope.push_str("{\"format\":\"");
            envelope.push_str(format);
            envelope.push_str("\",\"sensor\":\"");
            envelope.push_str(name);
            envelope.push_str("\",\"record\":");
            let own_id = w.own_id;
            let content_id = |raw: &[u8]| {
                own_id
                    .is_none()
                    .then(|| content_event_id(format, name, raw).to_string())
            };
            let hashed = match w.body {
                Body::Json(mut o) => {
                    if let Some(field) = formats::large_field(p.kind) {
                        if self.cfg.large > 0.0 && self.rng.random_bool(self.cfg.large) {
                            let len = self.rng.random_range(256 << 10..=2 << 20);
                            o.str(field, &filler(&mut self.rng, len));
                        }
                    }
                    // The id hashes exactly the bytes embedded in the envelope.
                    let raw = o.finish();
                    envelope.push_str(&raw);
                    content_id(raw.as_bytes())
                }
                Body::Line(line) => {
                    // A string record's raw bytes are the line itself, not its escaped JSON form.
                    push_json_str(&mut envelope, &line);
                    content_id(line.as_bytes())
                }
            };
            let event_id = match (own_id, hashed) {
                (Some(id), _) | (None, Some(id)) => id,
                (None, None) => unreachable!("hashed whenever there is no own id"),
            };
            envelope.push('}');

            let late = self.cfg.late > 0.0 && self.rng.random_bool(self.cfg.late);
            let max_late = self.cfg.max_late.as_nanos().min(i64::MAX as u128 / 4) as i64;
            let lateness = if late {
                let lo = MIN_LATENESS_NS.min(max_late);
                self.rng.random_range(lo..=max_late)
            } else {
                0
            };
            let delay = self.rng.random_range(0..=MAX_DELIVERY_DELAY_NS);
            self.queue.push(Generated {
                arrival: Timestamp(p.emitted.as_nanos() + delay + lateness),
                event_time: w.time,
                envelope,
                event_id,
                story: story.clone(),
                format,
                sensor: name.to_string(),
                late,
                reversed: p.kind.is_reversed(),
            });
        }
    }
}

impl Iterator for Generator {
    type Item = Generated;

    fn next(&mut self) -> Option<Generated> {
        loop {
            // No future record is emitted (let alone arrives) before the next session's DNS lead.
            let watermark = if self.exhausted {
                Timestamp::MAX
            } else {
                Timestamp(self.next_start.as_nanos() - MAX_DNS_LEAD_NS)
            };
            if let Some(g) = self.queue.pop_ready(watermark) {
                return Some(g);
            }
            if self.exhausted {
                return None;
            }
            self.generate_session();
        }
    }
}

/// Printable ASCII of the given length without quotes or backslashes (so it embeds unescaped), built
/// from a random 4 KiB block repeated: cheap even for megabytes, and still unique per record.
fn filler(rng: &mut SmallRng, len: usize) -> String {
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,:;-_/=+()<>";
    let block: Vec<u8> = (0..4096)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect();
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let n = (len - out.len()).min(block.len());
        out.extend_from_slice(&block[..n]);
    }
    String::from_utf8(out).expect("ASCII")
}
