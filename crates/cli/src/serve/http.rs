//! What both pages' servers share: answers, query strings, and the two checks that keep other
//! web pages out (the `Host` a request names, and where a state-changing request comes from).

use tiny_http::{Header, Request, Response};

/// An answer: status, content type, body.
pub type Answer = (u16, &'static str, Vec<u8>);

/// A one-line plain-text answer (every refusal is one).
pub fn text(status: u16, msg: impl Into<String>) -> Answer {
    let mut body = msg.into();
    body.push('\n');
    (status, "text/plain; charset=utf-8", body.into_bytes())
}

/// A JSON answer with status 200.
pub fn json(v: serde_json::Value) -> Answer {
    (200, "application/json", v.to_string().into_bytes())
}

/// Sends the answer; a client that has gone away is no error of the server's.
pub fn respond(rq: Request, (status, kind, body): Answer) {
    let header = Header::from_bytes(&b"Content-Type"[..], kind.as_bytes()).expect("a valid header");
    let no_store = Header::from_bytes(&b"Cache-Control"[..], &b"no-store"[..]).expect("a valid header");
    let _ = rq.respond(Response::from_data(body).with_status_code(status).with_header(header).with_header(no_store));
}

/// `a=1&b=2` as pairs, with %XX and + decoded (malformed escapes are kept as they are).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The value of query parameter `name`, if given.
pub fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The value of a request's header `name`, if it has one.
pub fn header<'a>(rq: &'a Request, name: &'static str) -> Option<&'a str> {
    rq.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str())
}

/// The `Host` names the server answers to. A page on another site can point a domain it
/// controls at 127.0.0.1 (DNS rebinding) and then read this server as if it were its own; the
/// browser still sends that domain in `Host`. So, as Jupyter does, a request is answered only
/// when its `Host` is an address the server was started on: with the default loopback address,
/// `127.0.0.1`, `localhost` or `[::1]` with the port; with another `--host`, that address. Only
/// `--host 0.0.0.0` (or `::`), which asks to be reached under any name, accepts any.
#[derive(Debug)]
pub struct AllowedHosts {
    /// Accepted `Host` values, `name:port`, compared without regard to case; empty means any.
    names: Vec<String>,
}

impl AllowedHosts {
    /// The names for a server started with `--host host`, listening on `port`.
    pub fn new(host: &str, port: u16) -> Self {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let names = match host.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_unspecified() => Vec::new(),
            Ok(ip) if ip.is_loopback() => ["127.0.0.1", "localhost", "[::1]"].map(|n| format!("{n}:{port}")).to_vec(),
            Ok(std::net::IpAddr::V6(ip)) => vec![format!("[{ip}]:{port}")],
            _ => vec![format!("{host}:{port}")],
        };
        AllowedHosts { names }
    }

    /// `None` if a request with this `Host` header may be answered, or the refusal.
    pub fn check(&self, host: Option<&str>) -> Option<Answer> {
        if self.names.is_empty() {
            return None;
        }
        match host {
            Some(h) if self.names.iter().any(|n| n.eq_ignore_ascii_case(h.trim())) => None,
            Some(h) => Some(text(
                403,
                format!("this server does not answer to the host {h:?}; open it at http://{}/", self.names[0]),
            )),
            None => Some(text(400, "the request has no Host header")),
        }
    }
}

/// Whether a state-changing request (one that starts, pauses or stops work) comes from the
/// server's own page. A page on another site can make the browser send a POST here (a form, or
/// `fetch` without reading the answer); three things refuse it:
/// - the request must carry the server's token in `X-Playground-Token`: the page has it, and a
///   page of another origin cannot read it (and a custom header makes the browser ask first);
/// - `Origin`, when sent (browsers send it with every POST), must be `http://` and the `Host`;
/// - `Sec-Fetch-Site`, when sent, must be `same-origin` or `none` (typed by the user).
///
/// `None` when the request may go on, or the refusal.
pub fn check_same_origin(
    token: &str,
    host: Option<&str>,
    origin: Option<&str>,
    fetch_site: Option<&str>,
    sent_token: Option<&str>,
) -> Option<Answer> {
    if sent_token != Some(token) {
        return Some(text(403, "this request needs the playground page's token (X-Playground-Token)"));
    }
    if let Some(origin) = origin {
        let own = host.map(|h| format!("http://{h}"));
        if own.as_deref().map(|o| o.eq_ignore_ascii_case(origin)) != Some(true) {
            return Some(text(403, format!("refused: a request from another origin ({origin})")));
        }
    }
    match fetch_site {
        None | Some("same-origin") | Some("none") => None,
        Some(site) => Some(text(403, format!("refused: a {site} request"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(hosts: &AllowedHosts, host: Option<&str>) -> u16 {
        hosts.check(host).map_or(200, |(status, _, _)| status)
    }

    #[test]
    fn a_loopback_server_answers_only_to_its_own_names() {
        let hosts = AllowedHosts::new("127.0.0.1", 8000);
        for ok in ["127.0.0.1:8000", "localhost:8000", "LOCALHOST:8000", "[::1]:8000"] {
            assert_eq!(status(&hosts, Some(ok)), 200, "{ok}");
        }
        for refused in
            ["evil.example", "evil.example:8000", "127.0.0.1:8001", "127.0.0.1", "localhost.evil.example:8000"]
        {
            assert_eq!(status(&hosts, Some(refused)), 403, "{refused}");
        }
        assert_eq!(status(&hosts, None), 400);
    }

    #[test]
    fn other_addresses_answer_to_themselves_and_the_unspecified_one_to_any() {
        let lan = AllowedHosts::new("192.168.1.5", 9000);
        assert_eq!(status(&lan, Some("192.168.1.5:9000")), 200);
        assert_eq!(status(&lan, Some("localhost:9000")), 403);
        let v6 = AllowedHosts::new("::1", 9000);
        assert_eq!(status(&v6, Some("[::1]:9000")), 200);
        let any = AllowedHosts::new("0.0.0.0", 9000);
        assert_eq!(status(&any, Some("evil.example")), 200);
    }

    /// Only the page's own requests change state: right token, own origin, same-origin fetch.
    #[test]
    fn state_changes_need_the_token_and_the_own_origin() {
        let host = Some("127.0.0.1:8000");
        let check = |origin, site, token| check_same_origin("s3cret", host, origin, site, token).map(|a| a.0);
        assert_eq!(check(Some("http://127.0.0.1:8000"), Some("same-origin"), Some("s3cret")), None);
        assert_eq!(check(None, None, Some("s3cret")), None, "a client that is no browser");
        assert_eq!(check(Some("http://127.0.0.1:8000"), Some("same-origin"), None), Some(403));
        assert_eq!(check(Some("http://127.0.0.1:8000"), None, Some("guess")), Some(403));
        assert_eq!(check(Some("http://evil.example"), None, Some("s3cret")), Some(403));
        assert_eq!(check(Some("null"), None, Some("s3cret")), Some(403));
        assert_eq!(check(None, Some("cross-site"), Some("s3cret")), Some(403));
        assert_eq!(check(None, Some("same-site"), Some("s3cret")), Some(403));
    }
}
