//! A followed nfdump or Argus csv file is read in batches, and each batch is parsed on its own with a
//! fresh header tracker (as the pipeline's ingest does). The header line appears once, at the top of
//! the file (or where the column order changes): every later batch must still read its records in that
//! header's column order, also after a restart and across nfdump's summary block.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storyline_io::source::file::{FileConfig, Follower};
use storyline_io::source::{IngestOutcome, RecordIngest, Rejected};
use storyline_parse::{HeaderTracker, Limits};

/// What came out of the parser: (source port, destination port, bytes) per record, and rejections.
#[derive(Default)]
struct Parsing {
    records: Mutex<Vec<(u16, u16, u64)>>,
    rejected: Mutex<Vec<String>>,
    batches: Mutex<usize>,
}

impl RecordIngest for Parsing {
    fn ingest(
        &self,
        body: &[u8],
        format: &str,
        sensor: &str,
        _source: &str,
        _first_line: u64,
    ) -> anyhow::Result<IngestOutcome> {
        let mut t = HeaderTracker::new(format).unwrap();
        let mut out = IngestOutcome::default();
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match t.parse_line(sensor, line, &Limits::default()) {
                None => {}
                Some(Ok(p)) => {
                    let e = p.event;
                    self.records.lock().unwrap().push((
                        e.source.port.unwrap_or(0),
                        e.destination.port.unwrap_or(0),
                        e.network.bytes.or(e.source.bytes).unwrap_or(0),
                    ));
                    out.accepted += 1;
                }
                Some(Err(r)) => {
                    self.rejected
                        .lock()
                        .unwrap()
                        .push(format!("{r}: {}", String::from_utf8_lossy(line)));
                    out.rejected += 1;
                }
            }
        }
        *self.batches.lock().unwrap() += 1;
        Ok(out)
    }

    fn dead_letter(&self, _: &Rejected<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}

fn follow(log: &Path, state: &Path, format: &str, ingest: &Arc<Parsing>) -> Follower {
    let mut cfg = FileConfig::new(log, format, "flows-1");
    cfg.poll_interval = Duration::from_millis(20);
    // Small batches: the header is in the first one only.
    cfg.batch_records = 4;
    std::fs::create_dir_all(state).unwrap();
    Follower::start(cfg, state, 1 << 20, ingest.clone()).unwrap()
}

fn append(log: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn wait_records(p: &Parsing, n: usize) {
    let started = Instant::now();
    while p.records.lock().unwrap().len() + p.rejected.lock().unwrap().len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} records, rejected: {:?}",
            p.records.lock().unwrap().len(),
            p.rejected.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Anything more (a line read twice) has a chance to arrive.
    std::thread::sleep(Duration::from_millis(100));
}

/// nfdump csv in a column order of its own (`-o "fmt:..."`-like), never the default one.
fn nfdump_line(i: u16) -> String {
    format!(
        "TCP,10.10.1.15,93.184.216.34,{},443,2026-11-21 10:00:{:02}.123,2.518,{},12\n",
        50_000 + i,
        i % 60,
        1000 + u64::from(i)
    )
}

#[test]
fn nfdump_csv_batches_after_the_first_read_with_the_top_header_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("flows.csv");
    let state = dir.path().join("state");
    let p = Arc::new(Parsing::default());
    let mut text = String::from("pr,sa,da,sp,dp,ts,td,ibyt,ipkt\n");
    for i in 0..10 {
        text.push_str(&nfdump_line(i));
    }
    append(&log, &text);
    let f = follow(&log, &state, "nfdump", &p);
    wait_records(&p, 10);
    // Written in several pieces while followed.
    for chunk in [10..13, 13..14, 14..21] {
        append(&log, &chunk.map(nfdump_line).collect::<String>());
        std::thread::sleep(Duration::from_millis(60));
    }
    wait_records(&p, 21);
    f.stop();
    // A restart starts from the saved offset, far from the header: it is read from the file's head.
    append(&log, &(21..27).map(nfdump_line).collect::<String>());
    // nfdump's summary block, cut by a batch boundary: 27 records + header = 28 lines = 7 batches of 4,
    // then "Summary" ends the 8th batch (3 records + Summary) and its totals start the 9th.
    append(&log, &(27..30).map(nfdump_line).collect::<String>());
    append(
        &log,
        "Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n30,31000,360,1000,1,86\n",
    );
    let f = follow(&log, &state, "nfdump", &p);
    wait_records(&p, 30);
    std::thread::sleep(Duration::from_millis(200));
    f.stop();
    assert_eq!(*p.rejected.lock().unwrap(), Vec::<String>::new());
    let records = p.records.lock().unwrap().clone();
    let want: Vec<(u16, u16, u64)> = (0..30)
        .map(|i| (50_000 + i, 443, 1000 + u64::from(i)))
        .collect();
    assert_eq!(
        records, want,
        "every record once, in the header's column order"
    );
    assert!(*p.batches.lock().unwrap() >= 8, "several batches");
}

fn argus_line(i: u16) -> String {
    format!(
        "tcp,10.10.1.15,{},   ->,93.184.216.34,443,2026/11/21 10:00:{:02}.123456,2.518062,12,10,{},5969,FIN\n",
        40_000 + i,
        i % 60,
        2000 + u64::from(i)
    )
}

fn argus_line_v2(i: u16) -> String {
    // The second run of `ra` prints the destination first.
    format!(
        "93.184.216.34,8443,10.10.1.15,{},tcp,2026/11/21 10:01:{:02}.000000,1.0,{},100\n",
        41_000 + i,
        i % 60,
        3000 + u64::from(i)
    )
}

#[test]
fn argus_csv_batches_keep_the_header_in_force_until_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("argus.csv");
    let state = dir.path().join("state");
    let p = Arc::new(Parsing::default());
    append(
        &log,
        "Proto,SrcAddr,Sport,Dir,DstAddr,Dport,StartTime,Dur,SrcPkts,DstPkts,SrcBytes,DstBytes,State\n",
    );
    let f = follow(&log, &state, "argus", &p);
    for chunk in [0..3, 3..9, 9..10, 10..17] {
        append(&log, &chunk.map(argus_line).collect::<String>());
        std::thread::sleep(Duration::from_millis(60));
    }
    wait_records(&p, 17);
    append(
        &log,
        "DstAddr,Dport,SrcAddr,Sport,Proto,StartTime,Dur,SrcBytes,DstBytes\n",
    );
    for chunk in [0..5, 5..11] {
        append(&log, &chunk.map(argus_line_v2).collect::<String>());
        std::thread::sleep(Duration::from_millis(60));
    }
    wait_records(&p, 28);
    f.stop();
    assert_eq!(*p.rejected.lock().unwrap(), Vec::<String>::new());
    let mut want: Vec<(u16, u16, u64)> = (0..17)
        .map(|i| (40_000 + i, 443, 2000 + u64::from(i) + 5969))
        .collect();
    want.extend((0..11).map(|i| (41_000 + i, 8443, 3000 + u64::from(i) + 100)));
    let records = p.records.lock().unwrap().clone();
    assert_eq!(records, want);
    assert!(*p.batches.lock().unwrap() >= 6, "several batches");
}

#[test]
fn after_copytruncate_the_old_header_no_longer_applies() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("flows.csv");
    let state = dir.path().join("state");
    let p = Arc::new(Parsing::default());
    let mut text = String::from("pr,sa,da,sp,dp,ts,td,ibyt,ipkt\n");
    for i in 0..10 {
        text.push_str(&nfdump_line(i));
    }
    append(&log, &text);
    let f = follow(&log, &state, "nfdump", &p);
    wait_records(&p, 10);
    // Truncated in place, then `nfdump -q` output (no header: nfdump's own column order) written to it.
    std::fs::write(
        &log,
        "2026-11-21 10:00:05.000,2026-11-21 10:00:05.000,0.000,10.10.1.15,10.10.0.2,53211,53,UDP,........,0,0,1,61\n",
    )
    .unwrap();
    wait_records(&p, 11);
    f.stop();
    assert_eq!(*p.rejected.lock().unwrap(), Vec::<String>::new());
    let records = p.records.lock().unwrap().clone();
    assert_eq!(records.len(), 11, "{records:?}");
    assert_eq!(
        records[10],
        (53211, 53, 61),
        "read in nfdump's default order"
    );
}
