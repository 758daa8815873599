//! Sysmon event 3 (network connection) as Winlogbeat ships it: the endpoint's view, always the inside
//! tuple in the direction the client opened it.

use super::{Body, Ctx, SensorState, Written};
use crate::text::{beats_time, sysmon_time, Obj};
use crate::world::PROGRAMS;
use rand::rngs::SmallRng;
use rand::Rng;
use storyline_model::Timestamp;

const TASK: &str = "Network connection detected (rule: NetworkConnect)";

pub fn connect(ctx: &Ctx, st: &mut SensorState, rng: &mut SmallRng) -> Written {
    let s = ctx.s;
    let c = ctx.client;
    let record_id = st.sysmon_record[s.client];
    st.sysmon_record[s.client] += 1;
    // Sysmon stamps the first packet (`occurred`); the event log entry is created a moment later.
    let utc = ctx.clock(ctx.occurred);
    let created = Timestamp(utc.as_nanos() + rng.random_range(1_000_000..15_000_000));
    let prog = s.program;
    let image = PROGRAMS[prog].image;
    let system = image.ends_with("svchost.exe");
    let user = if system {
        "NT AUTHORITY\\NETWORK SERVICE".to_string()
    } else {
        format!("CORP\\{}", c.user)
    };
    let dest_host = if s.dns.is_some() {
        s.server_name.as_str()
    } else {
        "-"
    };
    let short = c.host.to_ascii_lowercase();

    let mut o = Obj::new(2048);
    o.str("@timestamp", &beats_time(created));
    o.open("event")
        .str("code", "3")
        .str("kind", "event")
        .str("provider", "Microsoft-Windows-Sysmon")
        .str("action", TASK)
        .str("created", &beats_time(created))
        .str("module", "sysmon")
        .strs("category", &["network"])
        .strs("type", &["connection", "start", "protocol"])
        .close();
    o.open("host").str("name", &short).close();
    o.open("agent")
        .str("type", "winlogbeat")
        .str("version", "8.15.0")
        .str("name", &short)
        .close();
    o.open("ecs").str("version", "8.0.0").close();
    o.open("winlog")
        .str("channel", "Microsoft-Windows-Sysmon/Operational")
        .str("computer_name", &c.fqdn)
        .num("event_id", 3)
        .num("record_id", record_id)
        .str("provider_name", "Microsoft-Windows-Sysmon")
        .str("provider_guid", "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}")
        .str("api", "wineventlog")
        .str("opcode", "Info")
        .str("task", TASK)
        .num("version", 5);
    o.open("process")
        .num("pid", 3312)
        .open("thread")
        .num("id", 4100 + (record_id % 64) * 4)
        .close()
        .close();
    o.open("user")
        .str("identifier", "S-1-5-18")
        .str("domain", "NT AUTHORITY")
        .str("name", "SYSTEM")
        .str("type", "Well Known Group")
        .close();
    o.open("event_data")
        .str("RuleName", "-")
        .str("UtcTime", &sysmon_time(utc))
        .str("ProcessGuid", &c.process_guids[prog])
        .str("ProcessId", &c.pids[prog].to_string())
        .str("Image", image)
        .str("User", &user)
        .str("Protocol", s.transport().name())
        .str("Initiated", "true")
        .str("SourceIsIpv6", "false")
        .str("SourceIp", &s.client_ip.to_string())
        .str("SourceHostname", &c.fqdn)
        .str("SourcePort", &s.client_port.to_string())
        .str("SourcePortName", "-")
        .str("DestinationIsIpv6", "false")
        .str("DestinationIp", &s.server_ip.to_string())
        .str("DestinationHostname", dest_host)
        .str("DestinationPort", &s.service.port.to_string())
        .str("DestinationPortName", s.service.port_name)
        .close();
    o.close();

    Written {
        body: Body::Json(o),
        own_id: Some(format!("{}:{}", c.fqdn, record_id)),
        // The parser reads Winlogbeat's `@timestamp` (milliseconds).
        time: Timestamp(created.as_nanos().div_euclid(1_000_000) * 1_000_000),
    }
}
