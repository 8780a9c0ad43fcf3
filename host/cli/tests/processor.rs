//! `otsrep processor test`, as a guest author runs it in CI: records from a file or sampled
//! from a live table, the output checked line by line, an expected-output file, a guest that
//! traps on one record, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ots_protocol::json::change_json;
use ots_protocol::model::RowChange;
use ots_testkit::{LocalServer, workload};
use serde_json::{Value, json};

const RECORDS: &str = r#"{"kind":"put","key":[{"id":1}],"columns":[{"name":"a","value":1,"timestamp":1000},{"name":"secret","value":"x","timestamp":1000}]}
{"kind":"update","key":[{"id":7}],"columns":[{"name":"a","value":2,"timestamp":2000}],"sequence":{"epoch":0,"timestamp":2000000,"row_index":0}}

{"kind":"delete","key":[{"id":3}],"sequence":{"epoch":0,"timestamp":3000000,"row_index":0}}
{"kind":"update","key":[{"id":4}],"columns":[{"name":"secret","delete_all":true},{"name":"a","value":{"binary":"0aff"},"timestamp":4000}],"sequence":{"epoch":0,"timestamp":4000000,"row_index":1}}
"#;

const FILTER: &str = r#"{"where":[{"column":"id","less_than":5}],"exclude_columns":["secret"]}"#;

fn otsrep(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_otsrep"));
    command.args(["processor", "test"]).args(args);
    for (flag, path) in paths {
        command.arg(flag).arg(path);
    }
    command.output().unwrap()
}

fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn filter_expected() -> Vec<Value> {
    vec![
        json!({"record": 0, "change": {"kind": "put", "key": [{"id": 1}],
            "columns": [{"name": "a", "value": 1, "timestamp": 1000}]}}),
        // A stream record outside the filter becomes a delete: the row leaves the destination.
        json!({"record": 1, "change": {"kind": "delete", "key": [{"id": 7}]}}),
        json!({"record": 2, "change": {"kind": "delete", "key": [{"id": 3}]}}),
        json!({"record": 3, "change": {"kind": "update", "key": [{"id": 4}],
            "columns": [{"name": "a", "value": {"binary": "0aff"}, "timestamp": 4000}]}}),
    ]
}

#[test]
fn a_guest_runs_over_records_from_a_file_and_its_output_can_be_expected() {
    let dir = tempfile::tempdir().unwrap();
    let records = write(dir.path(), "records.jsonl", RECORDS);
    let out = otsrep(
        &["--name", "filter", "--options", FILTER],
        &[("--records", &records)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        lines(&out),
        filter_expected(),
        "row 7 is filtered out (deleted) and the secret column removed"
    );

    let expected = write(
        dir.path(),
        "expected.jsonl",
        &String::from_utf8_lossy(&out.stdout),
    );
    let same = otsrep(
        &["--name", "filter", "--options", FILTER],
        &[("--records", &records), ("--expect", &expected)],
    );
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    assert!(
        stderr(&same).contains("4 records gave the 4 expected lines"),
        "{}",
        stderr(&same)
    );

    // Another guest (the faithful copy) differs from the filter's expected output.
    let other = otsrep(&[], &[("--records", &records), ("--expect", &expected)]);
    assert_eq!(other.status.code(), Some(2), "a difference exits 2");
    let message = stderr(&other);
    assert!(
        message
            .contains("expected.jsonl: line 1: expected {\"change\":{\"columns\":[{\"name\":\"a\""),
        "{message}"
    );
    assert!(message.contains("lines differ from"), "{message}");
}

#[test]
fn a_record_the_guest_traps_on_is_named_and_the_others_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let records = write(dir.path(), "records.jsonl", RECORDS);
    let guest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../guest-processors/test-components/misbehave.wasm");
    let out = otsrep(
        &["--options", r#"{"mode":"trap","key":7}"#],
        &[("--file", &guest), ("--records", &records)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = lines(&out);
    let records: Vec<&Value> = lines.iter().map(|l| &l["record"]).collect();
    assert_eq!(records, [&json!(0), &json!(1), &json!(2), &json!(3)]);
    let error = lines[1]["error"].as_str().expect("record 1 failed");
    assert!(error.starts_with("trapped"), "{error}");
    assert_eq!(
        lines[2]["change"],
        json!({"kind": "delete", "key": [{"id": 3}]})
    );
    assert!(
        stderr(&out).contains("note: the batch of 4 records failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_input_is_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let records = write(
        dir.path(),
        "bad.jsonl",
        "{\"kind\":\"delete\",\"key\":[{\"id\":1}]}\n{\"kind\":\"upsert\",\"key\":[{\"id\":2}]}\n",
    );
    let out = otsrep(&[], &[("--records", &records)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("bad.jsonl, line 2: `kind` \"upsert\" is not"),
        "{}",
        stderr(&out)
    );
    let out = otsrep(&["--options", "[1]"], &[("--records", &records)]);
    assert!(
        stderr(&out).contains("--options must be a JSON object"),
        "{}",
        stderr(&out)
    );
    let good = write(dir.path(), "good.jsonl", RECORDS);
    let out = otsrep(
        &["--name", "filter", "--options", r#"{"where": 3}"#],
        &[("--records", &good)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("loading the built-in guest \"filter\"")
            && stderr(&out).contains("option `where` must be a list"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn records_can_be_sampled_from_a_live_table() {
    let server = LocalServer::start().await;
    let client = server.client();
    workload::create_source_table(&client, "users")
        .await
        .unwrap();
    workload::fill(&client, "users", 20, 1, |_| {})
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let config = write(
        dir.path(),
        "sample.toml",
        &ots_testkit::config_toml(&url, "users", "unused", "unused"),
    );
    let out = tokio::task::spawn_blocking(move || {
        otsrep(&["--rows", "3"], &[("--sample-from", &config)])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = ots_testkit::table_contents(&client, "users").await;
    let expected: Vec<Value> = rows[..3]
        .iter()
        .enumerate()
        .map(|(i, row)| {
            json!({"record": i, "change": change_json(&RowChange::Put {
                primary_key: row.primary_key.clone(),
                cells: row.cells.clone(),
            })})
        })
        .collect();
    assert_eq!(
        lines(&out),
        expected,
        "the replicate guest returns each sampled row"
    );
    server.shutdown().await;
}

/// What a guest author does outside this repository: create a guest crate, build it, and run
/// its own tests with the dev kit.
#[test]
fn a_new_guest_crate_builds_into_a_component_that_passes_its_own_tests() {
    let parent = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_otsrep");
    let run = |args: &[&str], dir: &Path| {
        let out = Command::new(bin)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "otsrep {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        out
    };
    run(&["processor", "new", "drop-drafts"], parent.path());
    let crate_dir = parent.path().join("drop-drafts");
    let again = Command::new(bin)
        .args(["processor", "new", "drop-drafts"])
        .current_dir(parent.path())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );

    run(&["processor", "build"], &crate_dir);
    let component = crate_dir.join("drop-drafts.wasm");
    assert!(
        component.is_file(),
        "the component is written beside the crate"
    );
    let out = run(
        &[
            "processor",
            "test",
            "--file",
            "drop-drafts.wasm",
            "--records",
            "tests/records.jsonl",
            "--expect",
            "tests/expected.jsonl",
        ],
        &crate_dir,
    );
    assert!(
        stderr(&out).contains("3 records gave the 2 expected lines"),
        "{}",
        stderr(&out)
    );
    // The options reach the new guest: with another column nothing is a draft.
    let out = run(
        &[
            "processor",
            "test",
            "--file",
            "drop-drafts.wasm",
            "--options",
            r#"{"column":"state"}"#,
            "--records",
            "tests/records.jsonl",
        ],
        &crate_dir,
    );
    assert_eq!(lines(&out).len(), 3);
}
