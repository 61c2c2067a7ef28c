//! How many files a chunk is staged as: one per slice of the destination cluster, since
//! COPY loads one file on one slice (a chunk staged as one file loads on one slice of
//! the whole cluster). Read once per run, at most [`MAX_FILES`];
//! `LOADER_FILES_PER_CHUNK` overrides it.

/// The most files a chunk is staged as when the cluster decides: each one in flight
/// holds its own buffers ([`crate::stage::upload`]), so memory grows with it.
pub const MAX_FILES: usize = 16;

/// The cluster's slice count (STV_SLICES: one row per slice). Provisioned clusters
/// only: Redshift Serverless has no STV tables. STV_SLICES is "visible to all users",
/// but a regular user sees only its own rows: the loader's user needs `ALTER USER ...
/// SYSLOG ACCESS UNRESTRICTED` to count the slices (README, "Database users").
pub const SLICES_SQL: &str = "SELECT COUNT(*) FROM stv_slices";

/// PURE: files per chunk from the slice count the cluster told, or why it could not:
/// the count capped at [`MAX_FILES`], else 1 and the warning to log.
pub fn from_slices(slices: Result<u64, String>) -> (usize, Option<String>) {
    let why = match slices {
        // STV tables show a regular user only its own rows.
        Ok(0) => format!(
            "{SLICES_SQL} returned 0; a user without SYSLOG ACCESS UNRESTRICTED sees no rows of it"
        ),
        Ok(n) => return ((n as usize).min(MAX_FILES), None),
        Err(e) => format!("{SLICES_SQL} failed: {e}"),
    };
    let warning = format!(
        "staging each chunk as 1 file, which COPY loads on one slice: the cluster's slice \
         count is unknown ({why}); set LOADER_FILES_PER_CHUNK to the cluster's slice count \
         to load on every slice"
    );
    (1, Some(warning))
}

/// Files per chunk for this run: `setting` (`LOADER_FILES_PER_CHUNK`) when given,
/// else the cluster's slice count read on `redshift` ([`from_slices`]; a failure is
/// logged as a warning, never an error).
pub async fn files_per_chunk(redshift: &tokio_postgres::Client, setting: Option<usize>) -> usize {
    if let Some(files) = setting {
        return files;
    }
    let (files, warning) = from_slices(slice_count(redshift).await);
    if let Some(warning) = warning {
        tracing::warn!(files, "{warning}");
    }
    files
}

async fn slice_count(redshift: &tokio_postgres::Client) -> Result<u64, String> {
    let messages = redshift
        .simple_query(SLICES_SQL)
        .await
        .map_err(|e| crate::diagnose::explain_error(crate::secrets::Role::Destination, &e))?;
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .ok_or_else(|| "no row came back".to_string())?
        .parse()
        .map_err(|e| format!("the count is not a number ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_per_slice_up_to_the_cap() {
        assert_eq!(from_slices(Ok(1)), (1, None));
        assert_eq!(from_slices(Ok(4)), (4, None));
        assert_eq!(from_slices(Ok(16)), (16, None));
        assert_eq!(from_slices(Ok(128)), (MAX_FILES, None));
    }

    #[test]
    fn an_unknown_slice_count_falls_back_to_one_file_and_says_why() {
        let (files, warning) = from_slices(Err("relation \"stv_slices\" does not exist".into()));
        assert_eq!(files, 1);
        assert_eq!(
            warning.unwrap(),
            "staging each chunk as 1 file, which COPY loads on one slice: the cluster's slice \
             count is unknown (SELECT COUNT(*) FROM stv_slices failed: relation \"stv_slices\" \
             does not exist); set LOADER_FILES_PER_CHUNK to the cluster's slice count to load \
             on every slice"
        );
        let (files, warning) = from_slices(Ok(0));
        assert_eq!(files, 1);
        assert!(
            warning
                .unwrap()
                .contains("(SELECT COUNT(*) FROM stv_slices returned 0; a user without SYSLOG ACCESS UNRESTRICTED sees no rows of it)"),
            "says why"
        );
    }
}
