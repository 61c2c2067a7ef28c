//! Human tables and JSON for the command line.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

/// Where command output goes and in which shape.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn print_json(&self, value: &serde_json::Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("JSON values always print")
        );
    }
}

/// A table with a header row, wrapped to the terminal when there is one.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    // A terminal that reports no size (a pseudo-terminal from `script`, some `docker
    // exec -t` sessions) reads as 0 columns: wrapping to that would print one character
    // per line, so such a table is not wrapped at all.
    if t.width().is_some_and(|w| w < 40) {
        t.set_content_arrangement(ContentArrangement::Disabled);
    }
    t
}
