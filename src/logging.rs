//! Log set-up: JSON lines in Lambda (CloudWatch), readable lines on a terminal.
//! `RUST_LOG` filters in both; `LOG_FORMAT=json|text` overrides the choice.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

/// Picks the format: `LOG_FORMAT` when set to `json` or `text`, else JSON in Lambda.
pub fn format_from(log_format: Option<&str>, in_lambda: bool) -> Format {
    match log_format.map(str::to_ascii_lowercase).as_deref() {
        Some("json") => Format::Json,
        Some("text") => Format::Text,
        _ if in_lambda => Format::Json,
        _ => Format::Text,
    }
}

/// Whether the CLI draws progress bars: standard error is a terminal.
pub fn progress_bars() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// Installs the global subscriber, writing to standard error.
pub fn init(in_lambda: bool) {
    let format = format_from(std::env::var("LOG_FORMAT").ok().as_deref(), in_lambda);
    // tokio-postgres logs server NOTICEs (`schema already exists, skipping`) at info.
    // With progress bars on screen, the engine's per-chunk lines would only scroll them.
    let quiet = if !in_lambda && progress_bars() {
        ",redshift_loader::sync=warn,redshift_loader::setup=warn"
    } else {
        ""
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("info,tokio_postgres=warn{quiet}")));
    // Colours only for a person at a terminal, never into files, pipes or CloudWatch.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        Format::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::{format_from, Format};

    #[test]
    fn format_follows_env_then_lambda() {
        assert_eq!(format_from(None, true), Format::Json);
        assert_eq!(format_from(None, false), Format::Text);
        assert_eq!(format_from(Some("JSON"), false), Format::Json);
        assert_eq!(format_from(Some("text"), true), Format::Text);
        assert_eq!(format_from(Some("other"), false), Format::Text);
    }
}
