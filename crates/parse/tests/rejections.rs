//! Bad input: every rejection has the right code and a one-line message that names the field.

use storyline_parse::{parse_envelope, parse_record, Limits, Rejection, FORMATS};

fn envelope(line: &str) -> Rejection {
    match parse_envelope(line.as_bytes(), &Limits::default()) {
        Ok(p) => panic!("accepted {line}: {:?}", p.event),
        Err(e) => e,
    }
}

fn record(format: &str, raw: &str) -> Rejection {
    match parse_record(format, "s1", raw.as_bytes(), &Limits::default()) {
        Ok(p) => panic!("accepted {raw}: {:?}", p.event),
        Err(e) => e,
    }
}

/// Asserts the code, that the message mentions `field`, and that it is one line.
#[track_caller]
fn check(r: &Rejection, code: &str, field: &str) {
    if std::env::var_os("SHOW_MESSAGES").is_some() {
        eprintln!("{}", r);
    }
    let msg = r.to_string();
    assert_eq!(r.code(), code, "{msg}");
    assert!(msg.contains(field), "message should name `{field}`: {msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
}

#[test]
fn envelope_shape_errors() {
    check(
        &envelope(r#"{"format":"zeek","sensor":"z","record":{"ts":1"#),
        "malformed_json",
        "EOF",
    );
    check(&envelope("[1,2]"), "malformed_json", "JSON object");
    check(
        &envelope(r#"{"sensor":"z","record":{}}"#),
        "missing_field",
        "format",
    );
    check(
        &envelope(r#"{"format":"zeek","record":{}}"#),
        "missing_field",
        "sensor",
    );
    check(
        &envelope(r#"{"format":"zeek","sensor":"z"}"#),
        "missing_field",
        "record",
    );
    check(
        &envelope(r#"{"format":"zeek","sensor":"z","record":null}"#),
        "missing_field",
        "record",
    );
    check(
        &envelope(r#"{"format":5,"sensor":"z","record":{}}"#),
        "bad_value",
        "format",
    );
    check(
        &envelope(r#"{"format":"zeek","sensor":"","record":{}}"#),
        "bad_value",
        "sensor",
    );
    check(
        &envelope(r#"{"format":"zeek","sensor":"a\nb","record":{}}"#),
        "bad_value",
        "sensor",
    );
    check(
        &envelope(r#"{"format":"zeek","sensor":"z","record":[1]}"#),
        "bad_value",
        "record",
    );
    check(
        &envelope(r#"{"format":"zeek","sensor":"z","record":"{\"ts\":"}"#),
        "malformed_json",
        "EOF",
    );
    check(
        &envelope(r#"{"format":"zeek","sensor":"z","record":"   "}"#),
        "empty",
        "empty",
    );
}

#[test]
fn empty_lines() {
    for line in ["", "   ", "\r\n", "\n"] {
        assert_eq!(envelope(line), Rejection::Empty);
    }
    assert_eq!(record("aws_vpc", "\n"), Rejection::Empty);
}

#[test]
fn unknown_format_lists_the_known_ones() {
    let r = envelope(r#"{"format":"netflow9","sensor":"z","record":{}}"#);
    check(&r, "unknown_format", "netflow9");
    for f in FORMATS {
        assert!(r.to_string().contains(f));
    }
    check(&record("ZEEK", "{}"), "unknown_format", "format");
}

#[test]
fn oversized_is_rejected_before_parsing() {
    let small = Limits {
        max_record_bytes: 64,
    };
    let line = format!(
        r#"{{"format":"zeek","sensor":"z","record":"{}"}}"#,
        "x".repeat(100)
    );
    let r = parse_envelope(line.as_bytes(), &small).unwrap_err();
    assert_eq!(
        r,
        Rejection::Oversized {
            len: line.len(),
            limit: 64
        }
    );
    check(&r, "oversized", "max_record_bytes");
    // Not even valid JSON: size is checked first.
    let junk = vec![b'{'; 65];
    assert_eq!(
        parse_envelope(&junk, &small).unwrap_err().code(),
        "oversized"
    );
    assert_eq!(
        parse_record("panos", "s", &junk, &small)
            .unwrap_err()
            .code(),
        "oversized"
    );

    let huge = vec![b' '; Limits::default().max_record_bytes + 1];
    assert_eq!(
        parse_envelope(&huge, &Limits::default())
            .unwrap_err()
            .code(),
        "oversized"
    );
}

#[test]
fn binary_garbage() {
    let garbage: Vec<u8> = (0..=255u8).rev().cycle().take(3000).collect();
    let limits = Limits::default();
    let r = parse_envelope(&garbage, &limits).unwrap_err();
    assert_eq!(r.code(), "malformed_json");
    assert!(!r.to_string().contains('\n'));
    for f in FORMATS {
        let r = parse_record(f, "s", &garbage, &limits).unwrap_err();
        assert!(!r.to_string().contains('\n'), "{f}: {r}");
        assert!(
            r.to_string().chars().count() < 400,
            "{f}: message stays short: {r}"
        );
    }
}

#[test]
fn missing_timestamps_name_the_field() {
    check(
        &record("ecs", r#"{"source":{"ip":"10.0.0.1"}}"#),
        "missing_field",
        "@timestamp",
    );
    check(
        &record("zeek", r#"{"uid":"C1","id.orig_h":"10.0.0.1"}"#),
        "missing_field",
        "ts",
    );
    check(
        &record("suricata", r#"{"event_type":"flow"}"#),
        "missing_field",
        "timestamp",
    );
    check(
        &record("sysmon", r#"{"winlog":{"event_id":3}}"#),
        "missing_field",
        "@timestamp",
    );
    check(
        &record("aws_vpc", "2 1 eni-1 - - - - - - - - - - NODATA"),
        "missing_field",
        "start",
    );
    let panos_no_time = "1,2026/11/21 10:00:03,0128,TRAFFIC,end,2561,,10.0.0.1,10.0.0.2,0.0.0.0,0.0.0.0,r,,,ssl,vsys1,t,u,e1,e2,fwd,,1,1,1,2,0,0,0x0,tcp,allow,1,1,0,1,,0,any,0,77";
    check(
        &record("panos", panos_no_time),
        "missing_field",
        "Generated Time",
    );
}

#[test]
fn bad_timestamps_name_the_field() {
    check(
        &record("ecs", r#"{"@timestamp":"yesterday"}"#),
        "bad_timestamp",
        "@timestamp",
    );
    check(
        &record("ecs", r#"{"@timestamp":1795255200000}"#),
        "bad_timestamp",
        "RFC 3339",
    );
    check(&record("zeek", r#"{"ts":"soon"}"#), "bad_timestamp", "ts");
    check(
        &record("zeek", r#"{"ts":1e300}"#),
        "bad_timestamp",
        "epoch seconds",
    );
    check(
        &record(
            "suricata",
            r#"{"timestamp":"2026-13-45T99:00:00+0000","event_type":"flow"}"#,
        ),
        "bad_timestamp",
        "timestamp",
    );
    check(
        &record(
            "suricata",
            r#"{"timestamp":"2026-11-21T10:00:00Z","event_type":"flow","flow":{"start":"x","end":"y"}}"#,
        ),
        "bad_timestamp",
        "flow.start",
    );
    check(
        &record(
            "aws_vpc",
            "2 1 eni-1 - - - - - - - 17952x 1795255260 - NODATA",
        ),
        "bad_timestamp",
        "start",
    );
    check(
        &record(
            "aws_vpc",
            "2 1 eni-1 - - - - - - - 99999999999999999 1 - NODATA",
        ),
        "bad_timestamp",
        "start",
    );
    let panos = "1,2026/11/21 10:00:03,0128,TRAFFIC,end,2561,2026/21/11 10:00:02,10.0.0.1,10.0.0.2,0.0.0.0,0.0.0.0,r,,,ssl,vsys1,t,u,e1,e2,fwd,,1,1,1,2,0,0,0x0,tcp,allow,1,1,0,1,,0,any,0,77";
    check(&record("panos", panos), "bad_timestamp", "Generated Time");
}

#[test]
fn wrong_types_name_the_field() {
    let ts = r#""ts":1795255200.5"#;
    check(
        &record("zeek", &format!(r#"{{{ts},"id.orig_p":"http"}}"#)),
        "bad_value",
        "id.orig_p",
    );
    check(
        &record("zeek", &format!(r#"{{{ts},"id.orig_p":70000}}"#)),
        "bad_value",
        "0-65535",
    );
    check(
        &record("zeek", &format!(r#"{{{ts},"id.orig_h":"10.0.0.256"}}"#)),
        "bad_value",
        "id.orig_h",
    );
    check(
        &record(
            "zeek",
            &format!(r#"{{{ts},"query":"a","answers":"1.2.3.4"}}"#),
        ),
        "bad_value",
        "answers",
    );
    check(
        &record(
            "zeek",
            &format!(r#"{{{ts},"query":"a","answers":["x"],"TTLs":["long"]}}"#),
        ),
        "bad_value",
        "TTLs",
    );
    check(
        &record("zeek", &format!(r#"{{{ts},"orig_bytes":-5}}"#)),
        "bad_value",
        "orig_bytes",
    );
    check(
        &record("zeek", &format!(r#"{{{ts},"duration":"forever"}}"#)),
        "bad_value",
        "duration",
    );

    let head = r#""timestamp":"2026-11-21T10:00:00Z","event_type":"dns""#;
    check(
        &record("suricata", &format!(r#"{{{head},"src_ip":12}}"#)),
        "bad_value",
        "src_ip",
    );
    check(
        &record("suricata", &format!(r#"{{{head},"dns":[]}}"#)),
        "bad_value",
        "dns",
    );
    check(
        &record(
            "suricata",
            &format!(r#"{{{head},"dns":{{"answers":[{{"rdata":"x","ttl":"-3"}}]}}}}"#),
        ),
        "bad_value",
        "dns.answers[].ttl",
    );
    check(
        &record(
            "suricata",
            &format!(r#"{{{head},"http":{{"status":"OK"}}}}"#),
        ),
        "bad_value",
        "http.status",
    );
    check(
        &record("suricata", r#"{"timestamp":"2026-11-21T10:00:00Z"}"#),
        "missing_field",
        "event_type",
    );

    check(
        &record(
            "sysmon",
            r#"{"@timestamp":"2026-11-21T10:00:00Z","winlog":{"event_id":1}}"#,
        ),
        "bad_value",
        "winlog.event_id",
    );
    check(
        &record(
            "sysmon",
            r#"{"@timestamp":"2026-11-21T10:00:00Z","winlog":{"event_id":"three"}}"#,
        ),
        "bad_value",
        "winlog.event_id",
    );
    check(
        &record("sysmon", r#"{"@timestamp":"2026-11-21T10:00:00Z"}"#),
        "missing_field",
        "winlog.event_id",
    );
    check(
        &record(
            "sysmon",
            r#"{"@timestamp":"2026-11-21T10:00:00Z","winlog":{"event_id":3,"event_data":{"SourcePort":"x"}}}"#,
        ),
        "bad_value",
        "winlog.event_data.SourcePort",
    );

    check(
        &record(
            "ecs",
            r#"{"@timestamp":"2026-11-21T10:00:00Z","source":{"port":"https"}}"#,
        ),
        "bad_value",
        "source.port",
    );
    check(
        &record(
            "ecs",
            r#"{"@timestamp":"2026-11-21T10:00:00Z","destination.ip":"nope"}"#,
        ),
        "bad_value",
        "destination.ip",
    );
    check(
        &record(
            "ecs",
            r#"{"@timestamp":"2026-11-21T10:00:00Z","network":"tcp"}"#,
        ),
        "bad_value",
        "network",
    );
    check(
        &record(
            "ecs",
            r#"{"@timestamp":"2026-11-21T10:00:00Z","source":{"ip":"10.0.0.1"},"source.ip":"10.0.0.2"}"#,
        ),
        "bad_value",
        "source.ip",
    );
    check(&record("ecs", "[]"), "malformed_json", "JSON object");

    check(
        &record(
            "aws_vpc",
            "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 tcp 1 1 1795255200 1795255201 ACCEPT OK",
        ),
        "bad_value",
        "protocol",
    );
    check(
        &record(
            "aws_vpc",
            "2 1 eni-1 10.0.0.x 10.0.0.2 1 2 6 1 1 1795255200 1795255201 ACCEPT OK",
        ),
        "bad_value",
        "srcaddr",
    );
    check(
        &record("aws_vpc", r#"{"version":2,"srcaddr":["10.0.0.1"]}"#),
        "bad_value",
        "srcaddr",
    );

    let panos = "1,2026/11/21 10:00:03,0128,TRAFFIC,end,2561,2026/11/21 10:00:02,10.0.0.1,10.0.0.2,0.0.0.0,0.0.0.0,r,,,ssl,vsys1,t,u,e1,e2,fwd,,1,1,99999,2,0,0,0x0,tcp,allow,1,1,0,1,,0,any,0,77";
    check(&record("panos", panos), "bad_value", "Source Port");
}

#[test]
fn text_format_structure_errors() {
    check(
        &record("aws_vpc", "2 123 eni-1 10.0.0.1"),
        "missing_field",
        "dstaddr",
    );
    check(&record("aws_vpc", "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"), "bad_value", "header line");
    check(
        &record("aws_vpc", "5 1 eni-1 - - - - - - - 1 2 - NODATA"),
        "bad_value",
        "version",
    );
    check(
        &record(
            "aws_vpc",
            "2 1 eni-1 - - - - - - - 1 2 - NODATA extra fields",
        ),
        "bad_value",
        "14",
    );
    check(
        &record("panos", "1,2026/11/21 10:00:03,0128,SYSTEM,general,0"),
        "bad_value",
        "Type",
    );
    check(
        &record(
            "panos",
            "1,2026/11/21 10:00:03,0128,TRAFFIC,end,2561,2026/11/21 10:00:02,10.0.0.1",
        ),
        "missing_field",
        "Destination Address",
    );
    check(&record("panos", "TRAFFIC,end"), "bad_value", "Type");
    check(
        &record("panos", "0128,TRAFFIC,end,"),
        "missing_field",
        "Serial Number",
    );
}

#[test]
fn every_code_is_distinct() {
    let all = [
        Rejection::UnknownFormat {
            format: "x".into(),
            known: FORMATS,
        },
        Rejection::MalformedJson { detail: "d".into() },
        Rejection::MissingField {
            field: "f".into(),
            hint: "h".into(),
        },
        Rejection::BadTimestamp {
            field: "f".into(),
            value: "v".into(),
        },
        Rejection::BadValue {
            field: "f".into(),
            value: "v".into(),
            expected: "e".into(),
        },
        Rejection::Oversized { len: 2, limit: 1 },
        Rejection::Empty,
    ];
    let codes: std::collections::HashSet<_> = all.iter().map(Rejection::code).collect();
    assert_eq!(codes.len(), all.len());
}

// ---------------------------------------------------------------------------------------------------
// zeek_tsv, nfdump, argus, gcp_vpc, cef.

const ZEEK_TSV_HEAD: &str = "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\torig_bytes\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tcount\n";

#[test]
fn zeek_tsv_rejections_name_the_field() {
    let ok = "1795255200.5\tC1\t10.0.0.1\t1\t10.0.0.2\t2\ttcp\t5";
    assert!(parse_record(
        "zeek_tsv",
        "s",
        format!("{ZEEK_TSV_HEAD}{ok}").as_bytes(),
        &Limits::default()
    )
    .is_ok());
    // Truncated: the first missing field is named.
    check(
        &record(
            "zeek_tsv",
            &format!("{ZEEK_TSV_HEAD}1795255200.5\tC1\t10.0.0.1"),
        ),
        "missing_field",
        "id.orig_p",
    );
    check(
        &record("zeek_tsv", &format!("{ZEEK_TSV_HEAD}{ok}\textra")),
        "bad_value",
        "#fields",
    );
    // Wrong-typed values are rejected by the Zeek mapping, naming the field.
    check(
        &record(
            "zeek_tsv",
            &format!("{ZEEK_TSV_HEAD}{}", ok.replace("\t5", "\tmany")),
        ),
        "bad_value",
        "orig_bytes",
    );
    check(
        &record(
            "zeek_tsv",
            &format!("{ZEEK_TSV_HEAD}{}", ok.replace("10.0.0.2", "10.0.0.999")),
        ),
        "bad_value",
        "id.resp_h",
    );
    check(
        &record(
            "zeek_tsv",
            &format!("{ZEEK_TSV_HEAD}{}", ok.replace("1795255200.5", "noon")),
        ),
        "bad_timestamp",
        "ts",
    );
    // No header at all.
    check(&record("zeek_tsv", ok), "missing_field", "#fields");
    check(
        &record("zeek_tsv", ZEEK_TSV_HEAD),
        "missing_field",
        "record",
    );
    check(
        &record("zeek_tsv", &format!("{ZEEK_TSV_HEAD}{ok}\n{ok}")),
        "bad_value",
        "one record line",
    );
    check(
        &record(
            "zeek_tsv",
            "#separator \\x09\n#fields\ta\tb\n#types\tstring\n1\t2",
        ),
        "bad_value",
        "#types",
    );
    check(
        &record("zeek_tsv", r#"{"fields":["ts"],"line":["5"]}"#),
        "bad_value",
        "line",
    );
    check(
        &record("zeek_tsv", r#"{"fields":["ts"]}"#),
        "missing_field",
        "line",
    );
    check(
        &record("zeek_tsv", r#"{"fields":{"a":1},"line":"x"}"#),
        "bad_value",
        "fields",
    );
}

#[test]
fn nfdump_rejections_name_the_field() {
    let ok = "2026-11-21 10:00:00.123,2026-11-21 10:00:02.641,2.518,10.10.1.15,93.184.216.34,51742,443,TCP,...AP.SF,0,0,12,1830,0,0";
    assert!(parse_record("nfdump", "s", ok.as_bytes(), &Limits::default()).is_ok());
    check(
        &record("nfdump", "2026-11-21 10:00:00.123,2026-11-21"),
        "missing_field",
        "sa",
    );
    check(
        &record(
            "nfdump",
            &ok.replace("2026-11-21 10:00:00.123,", "21/11/2026,"),
        ),
        "bad_timestamp",
        "ts",
    );
    check(
        &record("nfdump", &ok.replace("93.184.216.34", "example.com")),
        "bad_value",
        "da",
    );
    check(
        &record("nfdump", &ok.replace(",51742,", ",http,")),
        "bad_value",
        "sp",
    );
    check(
        &record("nfdump", &ok.replace(",1830,", ",-5,")),
        "bad_value",
        "ibyt",
    );
    check(
        &record("nfdump", &ok.replace(",TCP,", ",,")),
        "missing_field",
        "pr",
    );
    check(
        &record("nfdump", &ok.replace(",TCP,", ",T C P,")),
        "bad_value",
        "pr",
    );
    check(
        &record("nfdump", "ts,te,td,sa,da,sp,dp,pr"),
        "bad_value",
        "header line",
    );
    check(&record("nfdump", "Summary"), "bad_value", "summary");
    let json = r#"{"type":"FLOW","t_first":"2026-11-21T10:00:00","proto":6,"src4_addr":"10.0.0.1","dst4_addr":"10.0.0.2"}"#;
    assert!(parse_record("nfdump", "s", json.as_bytes(), &Limits::default()).is_ok());
    check(
        &record("nfdump", &json.replace("\"proto\":6", "\"proto\":\"tcp\"")),
        "bad_value",
        "proto",
    );
    check(
        &record("nfdump", &json.replace("\"proto\":6,", "")),
        "missing_field",
        "proto",
    );
    check(
        &record("nfdump", &json.replace("2026-11-21T10:00:00", "later")),
        "bad_timestamp",
        "t_first",
    );
    check(
        &record(
            "nfdump",
            &json.replace(r#""t_first":"2026-11-21T10:00:00","#, ""),
        ),
        "missing_field",
        "t_first",
    );
    check(
        &record("nfdump", &json.replace("10.0.0.1", "10.0.0")),
        "bad_value",
        "src4_addr",
    );
    check(
        &record("nfdump", &json.replace("FLOW", "STAT")),
        "bad_value",
        "type",
    );
    check(
        &record(
            "nfdump",
            &format!(
                "{}\"in_bytes\":[1]}}",
                json.trim_end_matches('}').to_owned() + ","
            ),
        ),
        "bad_value",
        "in_bytes",
    );
}

#[test]
fn argus_rejections_name_the_field() {
    let ok = "1795255200.123456,1795255202.641518,10.10.1.15,51742,93.184.216.34,443,tcp,22,7799";
    assert!(parse_record("argus", "s", ok.as_bytes(), &Limits::default()).is_ok());
    check(
        &record("argus", "1795255200.123456,1795255202.641518"),
        "missing_field",
        "SrcAddr",
    );
    check(
        &record(
            "argus",
            &ok.replace("1795255200.123456,", "10:00:00.123456,"),
        ),
        "bad_timestamp",
        "StartTime",
    );
    check(
        &record("argus", &ok.replace(",51742,", ",https,")),
        "bad_value",
        "Sport",
    );
    check(
        &record("argus", &ok.replace(",22,", ",lots,")),
        "bad_value",
        "TotPkts",
    );
    check(
        &record("argus", &ok.replace(",tcp,", ",,")),
        "missing_field",
        "Proto",
    );
    check(
        &record(
            "argus",
            "StartTime,LastTime,SrcAddr,Sport,DstAddr,Dport,Proto,TotPkts,TotBytes",
        ),
        "bad_value",
        "header line",
    );
}

#[test]
fn gcp_vpc_rejections_name_the_field() {
    let ok = r#"{"jsonPayload":{"connection":{"src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"protocol":6},"reporter":"SRC","bytes_sent":"10","start_time":"2026-11-21T10:00:00Z","end_time":"2026-11-21T10:00:05Z"}}"#;
    assert!(parse_record("gcp_vpc", "s", ok.as_bytes(), &Limits::default()).is_ok());
    check(
        &record("gcp_vpc", r#"{"logName":"x"}"#),
        "missing_field",
        "jsonPayload",
    );
    check(
        &record("gcp_vpc", r#"{"jsonPayload":"flow"}"#),
        "bad_value",
        "jsonPayload",
    );
    check(
        &record(
            "gcp_vpc",
            &ok.replace(r#""start_time":"2026-11-21T10:00:00Z","#, ""),
        ),
        "missing_field",
        "jsonPayload.start_time",
    );
    check(
        &record("gcp_vpc", &ok.replace("2026-11-21T10:00:05Z", "soon")),
        "bad_timestamp",
        "jsonPayload.end_time",
    );
    check(
        &record(
            "gcp_vpc",
            &ok.replace(r#""dest_port":2"#, r#""dest_port":"ssh""#),
        ),
        "bad_value",
        "jsonPayload.connection.dest_port",
    );
    check(
        &record(
            "gcp_vpc",
            &ok.replace(r#""protocol":6"#, r#""protocol":300"#),
        ),
        "bad_value",
        "jsonPayload.connection.protocol",
    );
    check(
        &record(
            "gcp_vpc",
            &ok.replace(r#""bytes_sent":"10""#, r#""bytes_sent":"-1""#),
        ),
        "bad_value",
        "jsonPayload.bytes_sent",
    );
    check(
        &record("gcp_vpc", &ok.replace("SRC", "ME")),
        "bad_value",
        "jsonPayload.reporter",
    );
    check(
        &record(
            "gcp_vpc",
            r#"{"jsonPayload":{"start_time":"2026-11-21T10:00:00Z"}}"#,
        ),
        "missing_field",
        "jsonPayload.connection",
    );
    check(
        &record("gcp_vpc", r#"{"jsonPayload":{"connection""#),
        "malformed_json",
        "EOF",
    );
}

#[test]
fn cef_rejections_name_the_field() {
    let ok =
        "CEF:0|V|P|1|100|N|5|rt=1795255200123 src=10.0.0.1 spt=1 dst=10.0.0.2 dpt=2 proto=TCP in=5";
    assert!(parse_record("cef", "s", ok.as_bytes(), &Limits::default()).is_ok());
    check(
        &record("cef", "<134>Nov 21 10:00:00 host not cef"),
        "bad_value",
        "CEF:0|",
    );
    check(&record("cef", "CEF:0|V|P|1|100"), "missing_field", "Name");
    check(
        &record("cef", "CEF:0|V|P|1|100|N"),
        "missing_field",
        "Severity",
    );
    check(
        &record("cef", &ok.replace("CEF:0", "CEF:9")),
        "bad_value",
        "CEF version",
    );
    check(
        &record("cef", &ok.replace("rt=1795255200123 ", "")),
        "missing_field",
        "rt",
    );
    check(
        &record("cef", &ok.replace("rt=1795255200123", "rt=Nov 21 10:00:00")),
        "bad_timestamp",
        "rt",
    );
    check(
        &record("cef", &ok.replace("spt=1", "spt=http")),
        "bad_value",
        "spt",
    );
    check(
        &record("cef", &ok.replace("dpt=2", "dpt=70000")),
        "bad_value",
        "dpt",
    );
    check(
        &record("cef", &ok.replace("src=10.0.0.1", "src=host-a")),
        "bad_value",
        "src",
    );
    check(
        &record("cef", &ok.replace("in=5", "in=five")),
        "bad_value",
        "in",
    );
    check(
        &record("cef", &ok.replace("proto=TCP", "proto=T\\=CP")),
        "bad_value",
        "proto",
    );
    check(
        &record("cef", &format!("{ok} deviceDirection=up")),
        "bad_value",
        "deviceDirection",
    );
}

#[test]
fn new_formats_binary_and_huge_input() {
    let garbage: Vec<u8> = (0..=255u8).rev().cycle().take(3000).collect();
    for f in ["zeek_tsv", "nfdump", "argus", "gcp_vpc", "cef"] {
        let r = parse_record(f, "s", &garbage, &Limits::default()).unwrap_err();
        assert!(!r.to_string().contains('\n'), "{f}: {r}");
        assert!(r.to_string().chars().count() < 400, "{f}: {r}");
        let small = Limits {
            max_record_bytes: 1024,
        };
        let huge = "9,".repeat(4096);
        check(
            &parse_record(f, "s", huge.as_bytes(), &small).unwrap_err(),
            "oversized",
            "max_record_bytes",
        );
        // Huge but under the limit: a rejection that stays short, not a panic or a megabyte message.
        let long = format!("{}{}", "x".repeat(200_000), ",1,2");
        let r = parse_record(f, "s", long.as_bytes(), &Limits::default()).unwrap_err();
        assert!(r.to_string().chars().count() < 400, "{f}: {r}");
    }
    // Non-UTF-8 text lines name the record.
    for f in ["nfdump", "argus"] {
        check(
            &record_bytes(f, b"2026-11-21 10:00:00,\xff\xfe"),
            "bad_value",
            "UTF-8",
        );
    }
}

fn record_bytes(format: &str, raw: &[u8]) -> Rejection {
    match parse_record(format, "s1", raw, &Limits::default()) {
        Ok(p) => panic!("accepted {raw:?}: {:?}", p.event),
        Err(e) => e,
    }
}
