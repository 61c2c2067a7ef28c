//! `run` and `setup` show progress bars on a terminal and plain log lines anywhere else.

use std::process::Command;

use crate::support::{text, World};

#[tokio::test]
async fn progress_bars_on_a_terminal_and_log_lines_otherwise() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, v text);
             INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 300) i;
             ANALYZE items;",
        )
        .await
        .unwrap();
    w.apply(
        "shop",
        "  - source: public.items\n    import_chunk_size: 100\n",
    )
    .await;
    let out = w.cli(&["setup", "shop"]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("table set up"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");

    // Piped: one log line per chunk, no terminal control codes.
    let out = w.cli(&["run", "shop"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stderr.matches("chunk loaded").count(), 3, "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");

    // On a terminal (a pseudo-terminal from `script`): a bar for the table instead,
    // against the planner's estimate (the table is analyzed), with bytes and an ETA;
    // the summary table starts on a line of its own.
    let tty = on_a_terminal(&w, "run shop --from-scratch --force");
    assert!(tty.contains('\x1b'), "no terminal drawing: {tty:?}");
    assert!(tty.contains("public.items"), "{tty:?}");
    assert!(tty.contains("300/~300 rows"), "{tty:?}");
    assert!(tty.contains("rows/s") && tty.contains("ETA"), "{tty:?}");
    assert!(
        tty.contains("staged (") && tty.contains("as CSV)"),
        "{tty:?}"
    );
    assert!(tty.contains("\n┌"), "{tty:?}");
    assert!(tty.contains("done: "), "{tty:?}");
    assert!(!tty.contains("chunk loaded"), "{tty:?}");

    // Incremental: no estimate, so a count without a bar or an ETA.
    w.source()
        .await
        .batch_execute("INSERT INTO items SELECT i, 'item ' || i FROM generate_series(301, 350) i")
        .await
        .unwrap();
    let tty = on_a_terminal(&w, "run shop --force");
    assert!(tty.contains("50 rows"), "{tty:?}");
    assert!(!tty.contains("ETA"), "{tty:?}");

    // setup: one bar over the job's tables, then the report (unwrapped: the
    // pseudo-terminal reports no width).
    let tty = on_a_terminal(&w, "setup shop");
    assert!(tty.contains("1/1 tables"), "{tty:?}");
    assert!(!tty.contains("table set up"), "{tty:?}");
    assert!(tty.contains("\n┌") && tty.contains("up to date"), "{tty:?}");

    // A table whose run fails ends its bar as failed, not done.
    w.source()
        .await
        .batch_execute("DROP TABLE items")
        .await
        .unwrap();
    let (ok, tty) = on_a_terminal_status(&w, "run shop --force");
    assert!(!ok, "{tty}");
    assert!(tty.contains("FAILED: 0 B staged (0 B as CSV)"), "{tty:?}");
    assert!(!tty.contains("done: "), "{tty:?}");
}

/// Runs the CLI with `args` on a pseudo-terminal (from `script`); what it drew.
fn on_a_terminal(w: &World, args: &str) -> String {
    let (ok, tty) = on_a_terminal_status(w, args);
    assert!(ok, "{tty}");
    tty
}

/// Like [`on_a_terminal`], and whether the command succeeded.
fn on_a_terminal_status(w: &World, args: &str) -> (bool, String) {
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_redshift-loader"));
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("LOG_FORMAT", "text")
        .envs(w.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("script(1) from util-linux runs");
    let (tty, _) = text(&out);
    (out.status.success(), tty)
}
