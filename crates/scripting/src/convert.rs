//! The request and response as hooks see them (Tyk's `MiniRequestObject` field names), and how a
//! hook's edits are applied back: deletes before sets, query edits in Tyk's order, overrides.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{StatusCode, Uri};
use mlua::{Function, Lua, Table, Value};

/// The request body as the pipeline holds it.
#[derive(Debug)]
pub enum BodyState {
    /// Not read: it will stream to the upstream untouched.
    Stream,
    /// Read into memory (a hook needs it, or a hook replaced it).
    Buffered(Bytes),
}

/// What a hook may read and change of a request.
pub struct RequestView<'a> {
    pub parts: &'a mut http::request::Parts,
    pub body: &'a mut BodyState,
}

/// What a response hook may read and change.
pub struct ResponseView<'a> {
    pub status: &'a mut StatusCode,
    pub headers: &'a mut HeaderMap,
    pub body: &'a mut Bytes,
}

/// `ReturnOverrides`: the gateway answers itself and the upstream is not called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub code: u16,
    pub error: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub override_error: bool,
}

impl Overrides {
    /// Tyk's rule: `ResponseError` replaces `ResponseBody`.
    pub fn message(&self) -> &str {
        if self.error.is_empty() { &self.body } else { &self.error }
    }

    /// A code >= 400 without `OverrideError` is answered with the JSON error template.
    pub fn wraps_error(&self) -> bool {
        self.code >= 400 && !self.override_error
    }
}

/// Go's canonical header form (`x-api-key` -> `X-Api-Key`), as Tyk hands headers to scripts.
pub fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    canonical_into(&mut out, name);
    out
}

fn canonical_into(out: &mut String, name: &str) {
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
}

pub(crate) fn headers_table(lua: &Lua, headers: &HeaderMap, mt: &Table) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for name in headers.keys() {
        let values = lua.create_sequence_from(
            headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        )?;
        t.raw_set(canonical(name.as_str()), values)?;
    }
    t.set_metatable(Some(mt.clone()))?;
    Ok(t)
}

/// The arguments of the prelude's `new_request`: method, URL, query, the headers as
/// `\x01Name\x02value...\x01` (Go's canonical names, `Host` included) and the body (empty when not
/// read).
pub(crate) type RequestArgs<'a> = (&'a str, &'a str, &'a str, String, Value);

pub(crate) fn request_args<'a>(lua: &Lua, view: &'a RequestView<'_>, with_body: bool) -> mlua::Result<RequestArgs<'a>> {
    let parts = &*view.parts;
    // \x01 and \x02 cannot occur in a header name or value, so a search for `\x01Name\x02` only
    // ever finds a name.
    let mut headers = String::with_capacity(256);
    for (name, value) in &parts.headers {
        headers.push('\x01');
        canonical_into(&mut headers, name.as_str());
        headers.push('\x02');
        headers.push_str(&String::from_utf8_lossy(value.as_bytes()));
    }
    headers.push('\x01');
    let body = match (&*view.body, with_body) {
        (BodyState::Buffered(b), true) => Value::String(lua.create_string(b)?),
        _ => Value::String(lua.create_string("")?),
    };
    let url = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    Ok((parts.method.as_str(), url, parts.uri.query().unwrap_or(""), headers, body))
}

/// The request as a table of its own (response hooks get it beside the response).
pub(crate) fn request_table(
    lua: &Lua,
    new_request: &Function,
    view: &RequestView<'_>,
    with_body: bool,
) -> mlua::Result<Table> {
    new_request.call(request_args(lua, view, with_body)?)
}

/// Which parts of a returned request changed, as the prelude's `changes` reports them.
pub(crate) mod changed {
    pub const DELETE_HEADERS: i64 = 1;
    pub const SET_HEADERS: i64 = 2;
    pub const BODY: i64 = 4;
    pub const URL: i64 = 8;
    pub const PARAMS: i64 = 16;
    pub const OVERRIDES: i64 = 32;
}

/// Applies a returned request table; `changes` (bits of [`changed`]) says which parts to read.
/// Returns the overrides when the hook set a response code.
pub(crate) fn apply_request(
    t: &Table,
    changes: i64,
    view: &mut RequestView<'_>,
    body_was_read: bool,
) -> mlua::Result<Option<Overrides>> {
    let headers = &mut view.parts.headers;
    if changes & changed::DELETE_HEADERS != 0
        && let Some(del) = t.raw_get::<Option<Table>>("DeleteHeaders")?
    {
        for name in del.sequence_values::<String>() {
            if let Ok(n) = HeaderName::from_bytes(name?.as_bytes()) {
                headers.remove(n);
            }
        }
    }
    if changes & changed::SET_HEADERS != 0
        && let Some(set) = t.raw_get::<Option<Table>>("SetHeaders")?
    {
        for pair in set.pairs::<String, String>() {
            let (k, v) = pair?;
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| mlua::Error::runtime(format!("SetHeaders: `{k}` is not a valid header name")))?;
            let value = HeaderValue::from_str(&v).map_err(|_| {
                mlua::Error::runtime(format!("SetHeaders: the value of `{k}` is not a valid header value"))
            })?;
            headers.insert(name, value);
        }
    }
    if changes & changed::BODY != 0
        && let Some(new_body) = t.raw_get::<Option<mlua::LuaString>>("Body")?
    {
        let new_body = Bytes::copy_from_slice(&new_body.as_bytes());
        let changed = match &*view.body {
            BodyState::Buffered(old) => *old != new_body,
            // The hook never saw the body: only a non-empty value replaces it.
            BodyState::Stream => !body_was_read && !new_body.is_empty(),
        };
        if changed {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(new_body.len()));
            headers.remove(TRANSFER_ENCODING);
            *view.body = BodyState::Buffered(new_body);
        }
    }
    if changes & (changed::URL | changed::PARAMS) != 0 {
        apply_url_and_params(t, view.parts)?;
    }
    if changes & changed::OVERRIDES != 0 { read_overrides(t) } else { Ok(None) }
}

fn apply_url_and_params(t: &Table, parts: &mut http::request::Parts) -> mlua::Result<()> {
    let original = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut url = t.raw_get::<Option<String>>("URL")?.unwrap_or_else(|| original.clone());
    if url.is_empty() {
        url = original.clone();
    }
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (url.clone(), String::new()),
    };
    let mut pairs = query_pairs(&query);
    let mut changed = false;
    if let Some(del) = t.raw_get::<Option<Table>>("DeleteParams")? {
        for name in del.sequence_values::<String>() {
            let name = name?;
            let before = pairs.len();
            pairs.retain(|(k, _)| *k != name);
            changed |= pairs.len() != before;
        }
    }
    if let Some(add) = t.raw_get::<Option<Table>>("AddParams")? {
        for pair in add.pairs::<String, String>() {
            let (k, v) = pair?;
            pairs.retain(|(n, _)| *n != k);
            pairs.push((k, v));
            changed = true;
        }
    }
    if let Some(ext) = t.raw_get::<Option<Table>>("ExtendedParams")? {
        for pair in ext.pairs::<String, Table>() {
            let (k, values) = pair?;
            for v in values.sequence_values::<String>() {
                pairs.push((k.clone(), v?));
                changed = true;
            }
        }
    }
    let query = if changed {
        // Tyk re-encodes the query with sorted keys when a hook changed it.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
    } else {
        query
    };
    let new = if query.is_empty() { path } else { format!("{path}?{query}") };
    if new != original {
        // A URL that does not parse is ignored, as in Tyk.
        if let Ok(uri) = new.parse::<Uri>()
            && uri.scheme().is_none()
        {
            parts.uri = uri;
        }
    }
    Ok(())
}

fn read_overrides(t: &Table) -> mlua::Result<Option<Overrides>> {
    let Some(o) = t.raw_get::<Option<Table>>("ReturnOverrides")? else { return Ok(None) };
    let code = o.raw_get::<Option<i64>>("ResponseCode")?.unwrap_or(0);
    if code == 0 {
        return Ok(None);
    }
    let code = u16::try_from(code)
        .ok()
        .filter(|c| (100..=999).contains(c))
        .ok_or_else(|| mlua::Error::runtime(format!("ReturnOverrides.ResponseCode {code} is not an HTTP status")))?;
    let mut headers = Vec::new();
    if let Some(h) = o.raw_get::<Option<Table>>("ResponseHeaders")? {
        for pair in h.pairs::<String, String>() {
            headers.push(pair?);
        }
    }
    Ok(Some(Overrides {
        code,
        error: o.raw_get::<Option<String>>("ResponseError")?.unwrap_or_default(),
        body: o.raw_get::<Option<String>>("ResponseBody")?.unwrap_or_default(),
        headers,
        override_error: o.raw_get::<Option<bool>>("OverrideError")?.unwrap_or(false),
    }))
}

pub(crate) fn response_table(lua: &Lua, view: &ResponseView<'_>, mt: &Table) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("StatusCode", view.status.as_u16())?;
    t.raw_set("Body", lua.create_string(&view.body[..])?)?;
    t.raw_set("Headers", headers_table(lua, view.headers, mt)?)?;
    t.raw_set("SetHeaders", lua.create_table()?)?;
    t.raw_set("DeleteHeaders", lua.create_table()?)?;
    Ok(t)
}

pub(crate) fn apply_response(t: &Table, view: &mut ResponseView<'_>) -> mlua::Result<()> {
    if let Some(del) = t.get::<Option<Table>>("DeleteHeaders")? {
        for name in del.sequence_values::<String>() {
            if let Ok(n) = HeaderName::from_bytes(name?.as_bytes()) {
                view.headers.remove(n);
            }
        }
    }
    if let Some(set) = t.get::<Option<Table>>("SetHeaders")? {
        for pair in set.pairs::<String, String>() {
            let (k, v) = pair?;
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
                view.headers.insert(n, v);
            }
        }
    }
    if let Some(body) = t.get::<Option<mlua::LuaString>>("Body")? {
        *view.body = Bytes::copy_from_slice(&body.as_bytes());
    }
    let code = t.get::<Option<i64>>("StatusCode")?.unwrap_or(0);
    if code != 0 {
        *view.status = u16::try_from(code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| mlua::Error::runtime(format!("StatusCode {code} is not an HTTP status")))?;
    }
    Ok(())
}

/// Query pairs, percent-decoded.
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_decode(s)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names() {
        assert_eq!(canonical("x-api-key"), "X-Api-Key");
        assert_eq!(canonical("authorization"), "Authorization");
    }

    #[test]
    fn query_round_trip() {
        assert_eq!(
            query_pairs("a=1&b=x%20y+z&c"),
            vec![("a".into(), "1".into()), ("b".into(), "x y z".into()), ("c".into(), "".into())]
        );
        assert_eq!(encode("a b&c"), "a%20b%26c");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41%zz"), "A%zz");
    }
}
