//! The official SDKs, unmodified, against the server over HTTP: the Python SDK
//! (`tests/python/sdk_conformance.py`, PyPI `tablestore`) and the Node SDK
//! (`tests/node/sdk_conformance.js`, npm `tablestore` pinned in `tests/node/package.json`).
//! `scripts/setup.sh` installs both. Each script prints one `ok:`/`FAILED:` line per check and
//! states how the real Tablestore service behaves.

use std::path::Path;

use ots_testkit::LocalServer;

/// Runs `program args... ENDPOINT ACCESS_ID ACCESS_SECRET INSTANCE` in `dir` against a fresh
/// server and asserts that every check passed.
async fn run_suite(what: &str, program: &str, args: &[&str], dir: &Path) {
    let server = LocalServer::start().await;
    let url = server.url();
    let output = tokio::process::Command::new(program)
        .args(args)
        .args([
            url.as_str(),
            ots_testkit::ACCESS_KEY_ID,
            ots_testkit::ACCESS_KEY_SECRET,
            ots_testkit::INSTANCE,
        ])
        .current_dir(dir)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} runs ({e}); run `bash scripts/setup.sh`"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAILED")).collect();
    assert!(
        output.status.success(),
        "{what} conformance suite failed ({} failing checks)\n{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        stdout.contains("all SDK conformance checks passed"),
        "{stdout}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn official_python_sdk_conforms() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let script = dir.join("sdk_conformance.py");
    run_suite("Python SDK", "python3", &[script.to_str().unwrap()], &dir).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn official_node_sdk_conforms() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules/tablestore").is_dir(),
        "the Node SDK is not installed in {}: run `bash scripts/setup.sh`",
        dir.join("node_modules").display()
    );
    let script = dir.join("sdk_conformance.js");
    run_suite("Node SDK", "node", &[script.to_str().unwrap()], &dir).await;
}
