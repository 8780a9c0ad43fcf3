//! The official Python SDK, unmodified, against the server over HTTP
//! (`tests/python/sdk_compat.py`; `scripts/setup.sh` installs the SDK).

use ots_testkit::LocalServer;

#[tokio::test(flavor = "multi_thread")]
async fn official_python_sdk_works_against_the_server() {
    let server = LocalServer::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sdk_compat.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .args([
            &server.url(),
            ots_testkit::ACCESS_KEY_ID,
            ots_testkit::ACCESS_KEY_SECRET,
            ots_testkit::INSTANCE,
        ])
        .output()
        .await
        .expect("python3 runs (scripts/setup.sh installs the tablestore SDK)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK compatibility script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("all SDK compatibility checks passed"),
        "{stdout}"
    );
    server.shutdown().await;
}
