//! `run` shows progress bars on a terminal and plain log lines anywhere else.

use std::process::Command;

use crate::support::{text, World};

#[tokio::test]
async fn progress_bars_on_a_terminal_and_log_lines_otherwise() {
    let w = World::new().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, v text);
             INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 300) i;",
        )
        .await
        .unwrap();
    w.apply(
        "shop",
        "  - source: public.items\n    import_chunk_size: 100\n",
    )
    .await;
    let out = w.cli(&["setup", "shop"]);
    assert!(out.status.success(), "{:?}", text(&out));

    // Piped: one log line per chunk, no terminal control codes.
    let out = w.cli(&["run", "shop"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stderr.matches("chunk loaded").count(), 3, "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");

    // On a terminal (a pseudo-terminal from `script`): a bar for the table instead.
    let command = format!(
        "{} run shop --from-scratch --force",
        env!("CARGO_BIN_EXE_redshift-loader")
    );
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
    assert!(out.status.success(), "{tty}");
    assert!(tty.contains('\x1b'), "no terminal drawing: {tty:?}");
    assert!(tty.contains("public.items"), "{tty:?}");
    assert!(tty.contains("300 rows"), "{tty:?}");
    assert!(!tty.contains("chunk loaded"), "{tty:?}");
}
