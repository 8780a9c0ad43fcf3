//! Every config in `examples/` is valid: it parses, and its processors (and each tenant's) load
//! with their options (the guests' `init` accepts them).

use std::path::Path;

use ots_replicator::config::ReplicatorConfig;

#[test]
fn every_example_config_parses_and_its_processor_accepts_its_options() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if ext != "toml" && ext != "json" {
            continue;
        }
        let config =
            ReplicatorConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let tenant_chains = config
            .tenants
            .iter()
            .flat_map(|t| &t.rules)
            .filter_map(|r| r.processors.as_deref());
        for chain in std::iter::once(&config.processors[..]).chain(tenant_chains) {
            ots_replicator::processor::load_chain(chain, &config.source.table_name)
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        }
        checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "chain.toml",
            "filter.toml",
            "rename.toml",
            "replicate.json",
            "replicate.toml",
            "route.toml",
            "tenants.toml"
        ],
        "the example configs"
    );
}
