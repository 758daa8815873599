//! Every `[[sinks]]` configuration in docs/sinks.md parses and validates (blocks marked `toml cloud` need
//! the `cloud` build feature and are checked only for TOML syntax).

use std::path::Path;
use storyline_server::Config;

#[test]
fn the_configurations_in_docs_sinks_md_are_valid() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/sinks.md"))
            .unwrap();
    let blocks = |tag: &str| -> Vec<String> {
        doc.split(&format!("```{tag}\n"))
            .skip(1)
            .map(|b| b.split("```").next().unwrap().to_string())
            .collect()
    };
    let plain = blocks("toml");
    assert!(plain.len() >= 10, "{} toml blocks", plain.len());
    let mut kinds = std::collections::BTreeSet::new();
    for b in &plain {
        let c = Config::parse(b).unwrap_or_else(|e| panic!("{e}\n{b}"));
        assert_eq!(c.sinks.len(), 1, "{b}");
        kinds.insert(c.sinks[0].kind().name());
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "elasticsearch",
            "file",
            "http",
            "object_store",
            "splunk_hec",
            "stdout",
            "syslog"
        ]
    );
    for b in blocks("toml cloud") {
        let v: toml::Value = toml::from_str(&b).unwrap_or_else(|e| panic!("{e}\n{b}"));
        assert!(v.get("sinks").is_some(), "{b}");
    }
}
