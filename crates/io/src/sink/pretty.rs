//! Stories as a person reads them in a terminal: one block per story version.

use super::StorySink;
use std::fmt::Write as _;
use std::io::Write;
use storyline_model::{push_unique, FusedEndpoint, Story};

pub struct PrettySink;

fn endpoint(e: &FusedEndpoint) -> String {
    match (e.ip, e.port) {
        (Some(ip), Some(p)) => format!("{ip}:{p}"),
        (Some(ip), None) => ip.to_string(),
        _ => "?".into(),
    }
}

fn join(v: &[storyline_model::Str]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

pub fn render(s: &Story) -> String {
    let mut out = String::new();
    let f = &s.fused;
    let dur = s.last_seen.nanos_since(s.first_seen) as f64 / 1e9;
    if let Some(into) = s.merged_into {
        let _ = writeln!(
            out,
            "story {} v{}  merged into {}",
            s.story_id, s.version, into
        );
        return out;
    }
    let _ = writeln!(
        out,
        "story {} v{}  {}  {:.1}s  {} event(s) from {}",
        s.story_id,
        s.version,
        s.first_seen,
        dur,
        s.event_count,
        join(&s.sensors)
    );
    let proto = f.network.transport.as_deref().unwrap_or("-");
    let mut flow = format!(
        "  {} → {} {proto}",
        endpoint(&f.source),
        endpoint(&f.destination)
    );
    if let Some(nat) = f.source.nat.ip {
        let _ = write!(
            flow,
            "  (NAT {nat}{})",
            f.source
                .nat
                .port
                .map(|p| format!(":{p}"))
                .unwrap_or_default()
        );
    }
    if let Some(b) = f.network.bytes {
        let _ = write!(flow, "  {b} bytes");
    }
    let _ = writeln!(out, "{flow}");
    // A name is usually in more than one list (the lookup, the TLS server name, the URL's domain): an
    // analyst reads it once.
    let mut names: Vec<&str> = Vec::new();
    for name in f
        .dns
        .question
        .names
        .iter()
        .chain(&f.tls.server_names)
        .chain(&f.url.domains)
    {
        push_unique(&mut names, name.as_str());
    }
    if !names.is_empty() {
        let _ = writeln!(out, "  names: {}", names.join(", "));
    }
    let who: Vec<String> = [
        ("user", &f.user.names),
        ("host", &f.host.names),
        ("process", &f.process.names),
    ]
    .iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k} {}", join(v)))
    .collect();
    if !who.is_empty() {
        let _ = writeln!(out, "  {}", who.join("  "));
    }
    let mut verdict = Vec::new();
    if !f.event.actions.is_empty() {
        verdict.push(format!("verdict: {}", join(&f.event.actions)));
    }
    if !f.rule.names.is_empty() {
        verdict.push(format!("rules: {}", join(&f.rule.names)));
    }
    if !verdict.is_empty() {
        let _ = writeln!(out, "  {}", verdict.join("  "));
    }
    out
}

impl StorySink for PrettySink {
    fn publish(&self, stories: &[Story]) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        for s in stories {
            out.write_all(render(s).as_bytes())?;
        }
        out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storyline_model::StoryId;

    #[test]
    fn renders_the_session_and_skips_what_is_absent() {
        let mut s = Story {
            story_id: StoryId(1),
            version: 2,
            event_count: 2,
            ..Default::default()
        };
        s.sensors = vec!["fw".into(), "edr".into()];
        s.fused.source.ip = Some("10.0.0.1".parse().unwrap());
        s.fused.source.port = Some(5000);
        s.fused.destination.ip = Some("192.0.2.1".parse().unwrap());
        s.fused.destination.port = Some(443);
        s.fused.event.actions = vec!["allow".into()].into();
        let text = render(&s);
        assert!(text.contains("10.0.0.1:5000 → 192.0.2.1:443"), "{text}");
        assert!(text.contains("2 event(s) from fw, edr"), "{text}");
        assert!(text.contains("verdict: allow"), "{text}");
        assert!(!text.contains("rules"), "no empty rule list: {text}");
        assert!(!text.contains("names:"), "{text}");
    }

    #[test]
    fn a_name_in_several_lists_is_shown_once() {
        let mut s = Story::default();
        s.fused.dns.question.names = vec!["portal.example".into()].into();
        s.fused.tls.server_names = vec!["portal.example".into(), "cdn.example".into()].into();
        s.fused.url.domains = vec!["portal.example".into()].into();
        let text = render(&s);
        assert!(
            text.contains("  names: portal.example, cdn.example\n"),
            "{text}"
        );
    }
}
