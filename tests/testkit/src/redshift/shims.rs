//! The objects the emulator installs in each database's `public` schema on the first
//! connection to it, so they resolve without a schema as Redshift's do:
//! `stl_load_errors` (or, acting as Redshift Serverless, `sys_load_error_detail` with
//! its documented columns and no STL table), `stv_slices` (when the emulator is given a
//! slice count), `getdate()`, `json_parse()`, `json_serialize()` (compact JSON as Redshift prints it, `null`
//! for NULL; object keys in jsonb's order, where Redshift keeps the input's),
//! `is_valid_json()`, and an event trigger that gives every created or altered table a
//! row trigger applying Redshift's length rules: VARCHAR(n) counts bytes (PostgreSQL
//! counts characters), CHAR holds single-byte characters only. The checks are installed
//! with the emulator's (superuser) rights, so a user without CREATE on `public` (the
//! PostgreSQL 15 default, and a loader user as the README creates it) can create tables.
//!
//! `SYSDATE`, `pg_last_copy_count()` and `pg_last_copy_id()` need no object: the
//! statement rewrites in `sql.rs` replace them.

use std::collections::HashSet;

use anyhow::{bail, Result};
use tokio::sync::Mutex;

use super::{backend_session, wire, EmulatorConfig};

/// A provisioned cluster's load error table.
pub const STL_LOAD_ERRORS: &str = r#"
CREATE TABLE IF NOT EXISTS public.stl_load_errors (
  userid integer, slice integer, tbl integer, starttime timestamp, session integer,
  query integer, filename char(256), line_number bigint, colname char(127), type char(10),
  col_length char(10), position integer, raw_line char(1024), raw_field_value char(1024),
  err_code integer, err_reason char(100), is_partial integer, start_offset bigint);
"#;

/// Redshift Serverless's (SYS_LOAD_ERROR_DETAIL in the Redshift docs): no raw value.
pub const SYS_LOAD_ERROR_DETAIL: &str = r#"
CREATE TABLE IF NOT EXISTS public.sys_load_error_detail (
  user_id integer, query_id bigint, transaction_id bigint, session_id integer,
  database_name char(64), table_id integer, start_time timestamp, file_name char(256),
  line_number bigint, column_name char(127), column_type char(10), column_length char(10),
  position integer, error_code integer, error_message char(512));
"#;

/// `stv_slices` with `slices` rows (columns as documented in *STV_SLICES*: node, slice,
/// localslice, type; two slices a node, all of type `D`).
pub fn stv_slices(slices: u32) -> String {
    format!(
        "CREATE OR REPLACE VIEW public.stv_slices AS SELECT (s / 2)::int AS node, s::int AS slice, \
         (s % 2)::int AS localslice, 'D'::char(1) AS type FROM generate_series(0, {}) AS s;\n",
        i64::from(slices) - 1
    )
}

/// The shims for a provisioned cluster, or for Redshift Serverless; `stv_slices` when
/// `slices` says how many.
pub fn shims(serverless: bool, slices: Option<u32>) -> String {
    let errors = if serverless {
        SYS_LOAD_ERROR_DETAIL
    } else {
        STL_LOAD_ERRORS
    };
    let slices = slices.map(stv_slices).unwrap_or_default();
    format!("{errors}{slices}{SHIMS}")
}

pub const SHIMS: &str = r#"
CREATE OR REPLACE FUNCTION public.getdate() RETURNS timestamp LANGUAGE sql STABLE
  AS $f$ SELECT date_trunc('second', localtimestamp)::timestamp $f$;
CREATE OR REPLACE FUNCTION public.json_parse(text) RETURNS jsonb LANGUAGE sql IMMUTABLE STRICT
  AS $f$ SELECT $1::jsonb $f$;
CREATE OR REPLACE FUNCTION public.json_serialize(jsonb) RETURNS text LANGUAGE sql IMMUTABLE
  AS $f$ SELECT CASE WHEN $1 IS NULL THEN 'null'
                     ELSE regexp_replace($1::text, E'("(?:[^"\\\\]|\\\\.)*")|[ \\t\\n\\r]+', E'\\1', 'g') END $f$;
CREATE OR REPLACE FUNCTION public.rs_emulator_strtol(num text, base integer) RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT
  AS $f$ DECLARE r bigint := 0; d integer; c text;
  BEGIN
    IF base < 2 OR base > 36 OR num = '' THEN RAISE EXCEPTION 'invalid input for STRTOL'; END IF;
    FOREACH c IN ARRAY regexp_split_to_array(lower(num), '') LOOP
      d := position(c in '0123456789abcdefghijklmnopqrstuvwxyz') - 1;
      IF d < 0 OR d >= base THEN RAISE EXCEPTION 'invalid input for STRTOL'; END IF;
      r := r * base + d;
    END LOOP;
    RETURN r;
  END $f$;
CREATE OR REPLACE FUNCTION public.strtol(num text, base integer) RETURNS bigint LANGUAGE sql IMMUTABLE STRICT
  AS $f$ SELECT CASE WHEN base = 16 AND num ~ '^[0-9a-fA-F]{1,15}$'
                     THEN ('x' || lpad(num, 16, '0'))::bit(64)::bigint
                     ELSE public.rs_emulator_strtol(num, base) END $f$;
CREATE OR REPLACE FUNCTION public.to_hex(bytea) RETURNS text LANGUAGE sql IMMUTABLE STRICT
  AS $f$ SELECT encode($1, 'hex') $f$;
CREATE OR REPLACE FUNCTION public.is_valid_json(text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
  AS $f$ BEGIN PERFORM $1::jsonb; RETURN true; EXCEPTION WHEN others THEN RETURN false; END $f$;
CREATE OR REPLACE FUNCTION public.rs_emulator_install_checks(rel regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $f$
DECLARE body text; fname text := 'rs_emulator_checks_' || rel::oid;
BEGIN
  SELECT string_agg(CASE WHEN atttypid = 'varchar'::regtype THEN
      format('IF octet_length(NEW.%I) > %s THEN RAISE EXCEPTION USING ERRCODE = ''22001'', MESSAGE = ''value too long for type character varying(%s)''; END IF;',
             attname, atttypmod - 4, atttypmod - 4)
    ELSE
      format('IF octet_length(NEW.%I) <> char_length(NEW.%I) THEN RAISE EXCEPTION USING ERRCODE = ''22021'', MESSAGE = ''value for type character(%s) holds a multibyte character, which Redshift CHAR cannot store''; END IF;',
             attname, attname, atttypmod - 4)
    END, ' ')
    INTO body
    FROM pg_attribute
   WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped AND atttypmod > 4
     AND atttypid IN ('varchar'::regtype, 'bpchar'::regtype);
  IF body IS NULL THEN
    -- No length rule to apply: no per-row cost either.
    EXECUTE format('DROP TRIGGER IF EXISTS rs_emulator_checks ON %s', rel);
    RETURN;
  END IF;
  EXECUTE format('CREATE OR REPLACE FUNCTION public.%I() RETURNS trigger LANGUAGE plpgsql AS $b$ BEGIN %s RETURN NEW; END $b$',
                 fname, coalesce(body, ''));
  EXECUTE format('CREATE OR REPLACE TRIGGER rs_emulator_checks BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION public.%I()',
                 rel, fname);
END $f$;
CREATE OR REPLACE FUNCTION public.rs_emulator_on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE obj record;
BEGIN
  FOR obj IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE object_type = 'table' LOOP
    IF EXISTS (SELECT 1 FROM pg_class WHERE oid = obj.objid AND relkind IN ('r', 'p')) THEN
      PERFORM public.rs_emulator_install_checks(obj.objid::regclass);
    END IF;
  END LOOP;
END $f$;
DROP EVENT TRIGGER IF EXISTS rs_emulator_on_ddl;
CREATE EVENT TRIGGER rs_emulator_on_ddl ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
  EXECUTE FUNCTION public.rs_emulator_on_ddl();
"#;

/// The databases whose shims are installed.
#[derive(Debug, Default)]
pub struct Installed(Mutex<HashSet<String>>);

impl Installed {
    /// Installs the shims in `database` once; the lock serialises installation.
    pub async fn ensure(&self, cfg: &EmulatorConfig, database: &str) -> Result<()> {
        let mut installed = self.0.lock().await;
        if installed.contains(database) {
            return Ok(());
        }
        let (mut backend, greeting) = backend_session(cfg, database, &cfg.backend_user).await?;
        if let Some(e) = greeting.iter().find(|m| m.tag == b'E') {
            // No such database, say: the client's own session will report it.
            tracing::debug!(error = ?wire::error_field(e, b'M'), "shims not installed");
            return Ok(());
        }
        let outcome = wire::run(&mut backend, &shims(cfg.serverless, cfg.slices)).await?;
        if let Some(e) = outcome.error {
            bail!(
                "installing the emulator's shims in {database}: {}",
                wire::error_field(&e, b'M').unwrap_or_default()
            );
        }
        installed.insert(database.to_string());
        Ok(())
    }
}
