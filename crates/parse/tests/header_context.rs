//! `HeaderContext`: the header lines to repeat in front of a later chunk of a stream, so that a fresh
//! `HeaderTracker` reads the chunk as one that had seen the whole stream.

use storyline_parse::{HeaderContext, HeaderTracker, Limits};

/// Parses `text` cut into chunks of `chunk` lines, each with the context's prefix in front and a fresh
/// tracker: what a followed file or a split replay does. Returns the destination ports, or the
/// rejections.
fn chunked(format: &str, text: &str, chunk: usize) -> Result<Vec<u16>, Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut ctx = HeaderContext::new(format).unwrap();
    let (mut ports, mut errors) = (Vec::new(), Vec::new());
    for part in lines.chunks(chunk) {
        let mut body = ctx.prefix().to_vec();
        for l in part {
            body.extend_from_slice(l.as_bytes());
            body.push(b'\n');
            ctx.observe(l.as_bytes());
        }
        let mut t = HeaderTracker::new(format).unwrap();
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match t.parse_line("s-1", line, &Limits::default()) {
                None => {}
                Some(Ok(p)) => ports.push(p.event.destination.port.unwrap_or(0)),
                Some(Err(e)) => errors.push(format!("{e}: {}", String::from_utf8_lossy(line))),
            }
        }
    }
    if errors.is_empty() {
        Ok(ports)
    } else {
        Err(errors)
    }
}

const NFDUMP: &str = "pr,sa,da,sp,dp,ts,td,ibyt,ipkt
TCP,10.10.1.15,93.184.216.34,51742,443,2026-11-21 10:00:00.123,2.518,1830,12
UDP,10.10.1.15,10.10.0.2,53211,53,2026-11-21 10:00:01.000,0.000,61,1
TCP,10.10.1.15,93.184.216.34,51743,8443,2026-11-21 10:00:02.123,2.518,1830,12
Summary
flows,bytes,packets,avg_bps,avg_pps,avg_bpp
3,3721,25,1000,1,86
ts,pr,sa,sp,da,dp,td,ibyt,ipkt
2026-11-21 10:01:00.000,TCP,10.10.1.16,40000,93.184.216.35,22,1.0,100,2
2026-11-21 10:01:01.000,TCP,10.10.1.16,40001,93.184.216.35,25,1.0,100,2
";

#[test]
fn nfdump_in_chunks_of_any_size_reads_like_the_whole_stream() {
    let whole = chunked("nfdump", NFDUMP, 1000).unwrap();
    assert_eq!(whole, vec![443, 53, 8443, 22, 25]);
    for chunk in 1..=6 {
        assert_eq!(
            chunked("nfdump", NFDUMP, chunk),
            Ok(whole.clone()),
            "chunks of {chunk} lines"
        );
    }
}

#[test]
fn argus_in_chunks_of_any_size_reads_like_the_whole_stream() {
    let text = "Proto,SrcAddr,Sport,Dir,DstAddr,Dport,StartTime,Dur,SrcBytes,DstBytes
tcp,10.10.1.15,51742,   ->,93.184.216.34,443,2026/11/21 10:00:00.123456,2.518062,1830,5969
udp,10.10.1.15,53211,  <->,10.10.0.2,53,2026/11/21 10:00:01.000000,0.1,61,120
DstAddr,Dport,SrcAddr,Sport,Proto,StartTime,Dur,SrcBytes,DstBytes
93.184.216.35,22,10.10.1.16,40000,tcp,2026/11/21 10:01:00.000000,1.0,100,200
";
    let whole = chunked("argus", text, 1000).unwrap();
    assert_eq!(whole, vec![443, 53, 22]);
    for chunk in 1..=4 {
        assert_eq!(
            chunked("argus", text, chunk),
            Ok(whole.clone()),
            "chunks of {chunk}"
        );
    }
}

#[test]
fn the_prefix_is_the_header_in_force_and_nothing_before_one() {
    let mut ctx = HeaderContext::new("nfdump").unwrap();
    assert!(ctx.prefix().is_empty());
    ctx.observe(b"TCP,10.0.0.1,10.0.0.2,1,2,2026-11-21 10:00:00.000,1,1,1\n");
    assert!(ctx.prefix().is_empty(), "a record is not a header");
    ctx.observe(b"pr,sa,da,sp,dp,ts\r\n");
    assert_eq!(ctx.prefix(), b"pr,sa,da,sp,dp,ts\n");
    ctx.observe(b"Summary\n");
    assert_eq!(ctx.prefix(), b"pr,sa,da,sp,dp,ts\nSummary\n");
    ctx.observe(b"ts,sa,da\n");
    assert_eq!(ctx.prefix(), b"ts,sa,da\n", "a new header ends the summary");
    // JSON records never change it.
    ctx.observe(br#"{"ts":"x","sa":"y"}"#);
    assert_eq!(ctx.prefix(), b"ts,sa,da\n");

    let mut z = HeaderContext::new("zeek_tsv").unwrap();
    z.observe_lines(b"#separator \\x09\n#fields\tts\tuid\n1.0\tC1\n#close\t2026\n");
    assert_eq!(
        z.prefix(),
        b"#close\t2026\n",
        "a later # block replaces the first"
    );
    assert!(HeaderContext::new("suricata").is_none());
}
