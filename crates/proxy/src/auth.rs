//! Finding the key in a request (header, query parameter, cookie) and removing it before proxying.

use std::borrow::Cow;

use http::HeaderMap;
use http::header::COOKIE;
use moongate_config::AuthConfig;

/// The key, in Tyk's precedence: the header; a non-empty query parameter overrides it; a non-empty
/// cookie overrides both. A leading `Bearer ` (any case) is removed.
pub fn find_key<'a>(auth: &AuthConfig, headers: &'a HeaderMap, query: Option<&'a str>) -> Option<Cow<'a, str>> {
    let mut key: Option<Cow<'a, str>> = headers.get(&auth.header_name).and_then(|v| v.to_str().ok()).map(Cow::Borrowed);
    if let (Some(name), Some(q)) = (&auth.param_name, query)
        && let Some(v) = query_param(q, name).filter(|v| !v.is_empty())
    {
        key = Some(v);
    }
    if let Some(name) = &auth.cookie_name
        && let Some(v) = cookie(headers, name).filter(|v| !v.is_empty())
    {
        key = Some(Cow::Borrowed(v));
    }
    let key = key?;
    if strip_bearer(&key).is_empty() {
        return None;
    }
    Some(match key {
        Cow::Borrowed(b) => Cow::Borrowed(strip_bearer(b)),
        Cow::Owned(o) => Cow::Owned(strip_bearer(&o).to_owned()),
    })
}

/// `Bearer <key>` (any case) to `<key>`, trimmed; a bare `Bearer` leaves nothing.
fn strip_bearer(v: &str) -> &str {
    let v = v.trim();
    match v.get(..6) {
        Some(p) if p.eq_ignore_ascii_case("bearer") && (v.len() == 6 || v.as_bytes()[6] == b' ') => v[6..].trim(),
        _ => v,
    }
}

/// The first value of a query parameter, percent-decoded.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// The query without every occurrence of `name`; `None` when nothing is left.
pub fn remove_query_param(query: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && percent_decode(pair.split_once('=').map_or(*pair, |(k, _)| k)) != name)
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

/// Removes one cookie from every `Cookie` header, dropping headers left empty.
pub fn remove_cookie(headers: &mut HeaderMap, name: &str) {
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty() && c.split_once('=').map_or(*c, |(k, _)| k) != name)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|v| !v.is_empty())
        .collect();
    headers.remove(COOKIE);
    for v in kept {
        if let Ok(v) = v.parse() {
            headers.append(COOKIE, v);
        }
    }
}

pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(param: bool, cookie: bool) -> AuthConfig {
        AuthConfig {
            header_name: http::HeaderName::from_static("authorization"),
            param_name: param.then(|| "authorization".to_owned()),
            cookie_name: cookie.then(|| "authorization".to_owned()),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn precedence_header_param_cookie() {
        let h = headers(&[("authorization", "Bearer hdr"), ("cookie", "a=1; authorization=ck")]);
        assert_eq!(find_key(&auth(false, false), &h, Some("authorization=qp")).as_deref(), Some("hdr"));
        assert_eq!(find_key(&auth(true, false), &h, Some("authorization=qp")).as_deref(), Some("qp"));
        assert_eq!(find_key(&auth(true, false), &h, Some("authorization=")).as_deref(), Some("hdr"));
        assert_eq!(find_key(&auth(true, true), &h, Some("authorization=qp")).as_deref(), Some("ck"));
        assert_eq!(find_key(&auth(false, false), &headers(&[("authorization", "bearer  ")]), None), None);
        assert_eq!(
            find_key(&auth(true, false), &HeaderMap::new(), Some("authorization=a%2Bb")).as_deref(),
            Some("a+b")
        );
    }

    #[test]
    fn removal() {
        assert_eq!(remove_query_param("a=1&authorization=x&b=2", "authorization").as_deref(), Some("a=1&b=2"));
        assert_eq!(remove_query_param("authorization=x", "authorization"), None);
        let mut h = headers(&[("cookie", "a=1; authorization=ck; b=2")]);
        remove_cookie(&mut h, "authorization");
        assert_eq!(h["cookie"], "a=1; b=2");
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b+c%zz%4"), "a b c%zz%4");
    }
}
