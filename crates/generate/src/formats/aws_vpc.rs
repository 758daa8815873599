//! AWS VPC flow logs, default (version 2) format: one space-separated line per direction of a flow,
//! seen outside the NAT, so the client appears as the firewall's public address.

use super::{Body, Ctx, Written};
use crate::text::epoch_secs;
use storyline_model::Timestamp;

pub const ACCOUNT: &str = "123456789012";
pub const INTERFACE: &str = "eni-0a1b2c3d4e5f60718";

pub fn flow(ctx: &Ctx, reversed: bool) -> Written {
    let s = ctx.s;
    let public = s.nat.unwrap_or((s.client_ip, s.client_port));
    let server = (s.server_ip, s.service.port);
    let (src, dst, packets, bytes) = if reversed {
        (server, public, s.pkts_in, s.bytes_in)
    } else {
        (public, server, s.pkts_out, s.bytes_out)
    };
    // The capture window starts at the first packet and closes on a whole second after the last one.
    let start = epoch_secs(ctx.clock(s.start));
    let end = (epoch_secs(ctx.clock(s.end())) + 1).max(start + 1);
    let line = format!(
        "2 {ACCOUNT} {INTERFACE} {} {} {} {} {} {} {} {start} {end} ACCEPT OK",
        src.0,
        dst.0,
        src.1,
        dst.1,
        s.transport().number(),
        packets,
        bytes,
    );
    Written {
        body: Body::Line(line),
        own_id: None,
        time: Timestamp(start * 1_000_000_000),
    }
}
