//! PostgreSQL protocol v3 framing: just enough to relay messages, build the few the
//! emulator answers with itself, and run simple queries on a backend stream.

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub const SSL_REQUEST: i32 = 80877103;
pub const GSSENC_REQUEST: i32 = 80877104;
pub const PROTOCOL_3: i32 = 196608;
pub const CANCEL_REQUEST: i32 = 80877102;

/// One typed message: its tag byte and body (without the length).
#[derive(Debug, Clone)]
pub struct Message {
    pub tag: u8,
    pub body: Vec<u8>,
}

impl Message {
    pub fn new(tag: u8, body: Vec<u8>) -> Message {
        Message { tag, body }
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.tag);
        out.extend_from_slice(&((self.body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(&self.body);
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 5);
        self.encode_into(&mut out);
        out
    }
}

/// Reads the untyped start-up packet: (code, body after the code).
pub async fn read_startup(stream: &mut (impl AsyncRead + Unpin)) -> Result<(i32, Vec<u8>)> {
    let len = stream.read_i32().await.context("reading start-up length")?;
    if !(8..=10_000).contains(&len) {
        bail!("bad start-up packet length {len}");
    }
    let code = stream.read_i32().await?;
    let mut body = vec![0; len as usize - 8];
    stream.read_exact(&mut body).await?;
    Ok((code, body))
}

/// Start-up parameters (`user`, `database`, `options`, ...) from the packet body.
pub fn startup_params(body: &[u8]) -> Vec<(String, String)> {
    let mut parts = body
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let mut params = Vec::new();
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        if k.is_empty() {
            break;
        }
        params.push((k, v));
    }
    params
}

pub fn startup_packet(params: &[(String, String)]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&PROTOCOL_3.to_be_bytes());
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = Vec::new();
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads one typed message; `None` at a clean end of stream.
pub async fn read_message(stream: &mut (impl AsyncRead + Unpin)) -> Result<Option<Message>> {
    let tag = match stream.read_u8().await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let len = stream.read_i32().await?;
    if len < 4 {
        bail!("bad message length {len}");
    }
    let mut body = vec![0; len as usize - 4];
    stream.read_exact(&mut body).await?;
    Ok(Some(Message { tag, body }))
}

/// Writes `messages` and flushes them (a TLS stream holds what it is given until then).
pub async fn write(stream: &mut (impl AsyncWrite + Unpin), messages: &[Message]) -> Result<()> {
    let mut out = Vec::new();
    for m in messages {
        m.encode_into(&mut out);
    }
    stream.write_all(&out).await?;
    stream.flush().await?;
    Ok(())
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// `Q`: a simple query.
pub fn query(sql: &str) -> Message {
    let mut body = Vec::new();
    cstr(&mut body, sql);
    Message::new(b'Q', body)
}

/// `C`: CommandComplete with a tag.
pub fn command_complete(tag: &str) -> Message {
    let mut body = Vec::new();
    cstr(&mut body, tag);
    Message::new(b'C', body)
}

/// `Z`: ReadyForQuery with a transaction status (`I`, `T`, `E`).
pub fn ready_for_query(status: u8) -> Message {
    Message::new(b'Z', vec![status])
}

/// `E`: ErrorResponse.
pub fn error_response(code: &str, message: &str) -> Message {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(field);
        cstr(&mut body, value);
    }
    body.push(0);
    Message::new(b'E', body)
}

/// `N`: a NoticeResponse at level INFO (Redshift reports COPY results this way).
pub fn info(message: &str) -> Message {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "INFO"),
        (b'V', "INFO"),
        (b'C', "00000"),
        (b'M', message),
    ] {
        body.push(field);
        cstr(&mut body, value);
    }
    body.push(0);
    Message::new(b'N', body)
}

/// `d`: CopyData.
pub fn copy_data(data: &[u8]) -> Message {
    Message::new(b'd', data.to_vec())
}

pub fn copy_done() -> Message {
    Message::new(b'c', Vec::new())
}

pub fn copy_fail(reason: &str) -> Message {
    let mut body = Vec::new();
    cstr(&mut body, reason);
    Message::new(b'f', body)
}

/// The SQL text of a `Q` message.
pub fn query_text(m: &Message) -> String {
    let end = m.body.iter().position(|b| *b == 0).unwrap_or(m.body.len());
    String::from_utf8_lossy(&m.body[..end]).into_owned()
}

/// A `P` (Parse) message's parts: statement name, SQL, parameter type OIDs.
pub struct Parse {
    pub name: String,
    pub sql: String,
    pub param_types: Vec<u32>,
}

pub fn parse_parse(m: &Message) -> Option<Parse> {
    let b = &m.body;
    let n1 = b.iter().position(|x| *x == 0)?;
    let name = String::from_utf8_lossy(&b[..n1]).into_owned();
    let rest = &b[n1 + 1..];
    let n2 = rest.iter().position(|x| *x == 0)?;
    let sql = String::from_utf8_lossy(&rest[..n2]).into_owned();
    let rest = &rest[n2 + 1..];
    let count = i16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let mut param_types = Vec::with_capacity(count);
    for i in 0..count {
        let at = 2 + i * 4;
        param_types.push(u32::from_be_bytes(rest.get(at..at + 4)?.try_into().ok()?));
    }
    Some(Parse {
        name,
        sql,
        param_types,
    })
}

pub fn build_parse(p: &Parse) -> Message {
    let mut body = Vec::new();
    cstr(&mut body, &p.name);
    cstr(&mut body, &p.sql);
    body.extend_from_slice(&(p.param_types.len() as i16).to_be_bytes());
    for t in &p.param_types {
        body.extend_from_slice(&t.to_be_bytes());
    }
    Message::new(b'P', body)
}

/// A `D` (Describe) message's target: `S` (statement) or `P` (portal), and its name.
pub fn describe_target(m: &Message) -> Option<(u8, String)> {
    let (&kind, rest) = m.body.split_first()?;
    let end = rest.iter().position(|b| *b == 0)?;
    Some((kind, String::from_utf8_lossy(&rest[..end]).into_owned()))
}

/// The parameter type OIDs of a `t` (ParameterDescription) message.
pub fn parameter_types(m: &Message) -> Vec<u32> {
    m.body
        .get(2..)
        .unwrap_or_default()
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The statement a `B` (Bind) message binds.
pub fn bind_statement(m: &Message) -> Option<String> {
    let mut parts = m.body.splitn(3, |b| *b == 0);
    let _portal = parts.next()?;
    let statement = parts.next()?;
    Some(String::from_utf8_lossy(statement).into_owned())
}

/// The same Bind, naming another statement.
pub fn bind_with_statement(m: &Message, statement: &str) -> Option<Message> {
    let portal_end = m.body.iter().position(|b| *b == 0)?;
    let rest = &m.body[portal_end + 1..];
    let statement_end = rest.iter().position(|b| *b == 0)?;
    let mut body = m.body[..=portal_end].to_vec();
    cstr(&mut body, statement);
    body.extend_from_slice(&rest[statement_end + 1..]);
    Some(Message::new(b'B', body))
}

/// The fields of an ErrorResponse/NoticeResponse by their one-letter codes.
pub fn error_fields(m: &Message) -> Vec<(u8, String)> {
    let mut fields = Vec::new();
    let mut rest = &m.body[..];
    while let Some((&code, tail)) = rest.split_first() {
        if code == 0 {
            break;
        }
        let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
        fields.push((code, String::from_utf8_lossy(&tail[..end]).into_owned()));
        rest = tail.get(end + 1..).unwrap_or(&[]);
    }
    fields
}

pub fn error_field(m: &Message, code: u8) -> Option<String> {
    error_fields(m)
        .into_iter()
        .find(|(c, _)| *c == code)
        .map(|(_, v)| v)
}

/// The text values of a DataRow (`None` for NULL).
pub fn data_row(m: &Message) -> Vec<Option<String>> {
    let b = &m.body;
    let n = i16::from_be_bytes([b[0], b[1]]) as usize;
    let mut at = 2;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let len = i32::from_be_bytes(b[at..at + 4].try_into().unwrap());
        at += 4;
        if len < 0 {
            values.push(None);
        } else {
            let len = len as usize;
            values.push(Some(String::from_utf8_lossy(&b[at..at + len]).into_owned()));
            at += len;
        }
    }
    values
}

/// The result of a simple query run by the emulator itself on a backend stream.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rows: Vec<Vec<Option<String>>>,
    /// The first ErrorResponse, if the backend sent one.
    pub error: Option<Message>,
    pub status: u8,
}

/// Runs `sql` on the backend and collects its answer up to ReadyForQuery. Nothing goes
/// to the client.
pub async fn run(backend: &mut TcpStream, sql: &str) -> Result<Outcome> {
    write(backend, &[query(sql)]).await?;
    collect(backend).await
}

/// Reads backend messages up to ReadyForQuery.
pub async fn collect(backend: &mut TcpStream) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    loop {
        let m = read_message(backend)
            .await?
            .context("the backend closed the connection")?;
        match m.tag {
            b'D' => outcome.rows.push(data_row(&m)),
            b'E' if outcome.error.is_none() => outcome.error = Some(m),
            b'Z' => {
                outcome.status = m.body.first().copied().unwrap_or(b'I');
                return Ok(outcome);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let e = error_response("XX000", "Load into table 'x' failed.");
        assert_eq!(error_field(&e, b'C').as_deref(), Some("XX000"));
        assert_eq!(
            error_field(&e, b'M').as_deref(),
            Some("Load into table 'x' failed.")
        );
        let p = Parse {
            name: "s1".into(),
            sql: "SELECT $1".into(),
            param_types: vec![23],
        };
        let back = parse_parse(&build_parse(&p)).unwrap();
        assert_eq!((back.name.as_str(), back.sql.as_str()), ("s1", "SELECT $1"));
        assert_eq!(back.param_types, vec![23]);
        assert_eq!(query_text(&query("SELECT 1")), "SELECT 1");
        let params = startup_params(b"user\0bob\0database\0db\0\0");
        assert_eq!(params[1], ("database".to_string(), "db".to_string()));
        let bind = Message::new(b'B', b"p1\0s7\0\0\x01\0\x01\0\0\0\x011\0\0".to_vec());
        assert_eq!(bind_statement(&bind).as_deref(), Some("s7"));
        let moved = bind_with_statement(&bind, "other").unwrap();
        assert_eq!(
            moved.body,
            b"p1\0other\0\0\x01\0\x01\0\0\0\x011\0\0".to_vec()
        );
        assert_eq!(
            describe_target(&Message::new(b'D', b"Ss7\0".to_vec())),
            Some((b'S', "s7".to_string()))
        );
        let t = Message::new(b't', vec![0, 2, 0, 0, 3, 239, 0, 0, 0, 23]);
        assert_eq!(parameter_types(&t), vec![1007, 23]);
    }
}
