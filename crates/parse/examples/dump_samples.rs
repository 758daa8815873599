use storyline_generate::{GenConfig, Generator};
fn main() {
    let cfg = GenConfig {
        events: 20_000,
        seed: 7,
        large: 0.0,
        ..GenConfig::default()
    };
    let mut seen = std::collections::BTreeMap::new();
    for g in Generator::new(&cfg) {
        let c = seen.entry(g.format).or_insert(0);
        if *c < 4 {
            println!("{}", g.envelope);
        }
        *c += 1;
    }
    let mut out = String::new();
    for g in Generator::new(&cfg) {
        out.push_str(&g.envelope);
        out.push('\n');
    }
    std::fs::write("/tmp/ex/all.ndjson", out).unwrap();
}
