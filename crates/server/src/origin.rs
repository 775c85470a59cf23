//! Which web pages may open a WebSocket to this node.
//!
//! Browsers attach `Origin` to every WebSocket handshake and let any page connect anywhere,
//! so the server decides. Allowed: the server's own origin (the Origin's host equals the Host
//! header, whatever the scheme, so a TLS proxy in front does not matter), plain-http
//! `localhost` / `127.0.0.1` / `[::1]` development origins on any port when the node is in
//! development (it listens on a loopback address, or was told to accept them), and each
//! configured origin. A request with no Origin header at all is allowed: browsers always send one, so
//! its absence means a non-browser client (the load generator, a test), which could forge any
//! Origin anyway; the capability token is what protects a room.

/// The allowlist, normalized once at startup.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    allowed: Vec<String>,
    development: bool,
}

/// Why an origin string is not of the form `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an origin (expected scheme://host[:port]): {0:?}")]
pub struct InvalidOrigin(pub String);

impl OriginPolicy {
    /// Allows, besides the built-in rules, exactly the given origins
    /// (e.g. `https://board.example.com`); local development origins only if `development`.
    pub fn new(allowed: &[String], development: bool) -> Result<Self, InvalidOrigin> {
        let allowed = allowed
            .iter()
            .map(|o| {
                let trimmed = o.trim().trim_end_matches('/');
                let (scheme, authority) = parse(trimmed).ok_or_else(|| InvalidOrigin(o.clone()))?;
                Ok(format!("{scheme}://{authority}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allowed,
            development,
        })
    }

    /// Whether a handshake with this `Origin` (and `Host`) header may proceed.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let Some((scheme, authority)) = parse(origin) else {
            // "null" (sandboxed frames, file://) and anything unparsable.
            return false;
        };
        if host.is_some_and(|h| h.eq_ignore_ascii_case(&authority)) {
            return true;
        }
        if self.development && scheme == "http" && is_loopback_dev(&authority) {
            return true;
        }
        let normalized = format!("{scheme}://{authority}");
        self.allowed.contains(&normalized)
    }
}

/// Splits `scheme://authority` into lowercase parts; refuses paths, credentials, whitespace.
fn parse(origin: &str) -> Option<(String, String)> {
    let (scheme, authority) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    if authority.is_empty() || !authority.chars().all(valid) {
        return None;
    }
    Some((scheme, authority.to_ascii_lowercase()))
}

/// `localhost`, `127.0.0.1` or `[::1]`, with an optional numeric port, and nothing else
/// (`localhost.evil.example` is not local).
fn is_loopback_dev(authority: &str) -> bool {
    let (host, rest) = match authority.strip_prefix("[::1]") {
        Some(rest) => ("[::1]", rest),
        None => match authority.find(':') {
            Some(i) => authority.split_at(i),
            None => (authority, ""),
        },
    };
    let port_ok = rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok && matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(extra: &[&str]) -> OriginPolicy {
        let extra: Vec<_> = extra.iter().map(|s| s.to_string()).collect();
        OriginPolicy::new(&extra, true).unwrap()
    }

    #[test]
    fn development_origins_are_refused_on_a_node_in_production() {
        let public = OriginPolicy::new(&[], false).unwrap();
        for o in [
            "http://localhost:9",
            "http://127.0.0.1:8081",
            "http://[::1]:3000",
        ] {
            assert!(!public.allows(Some(o), Some("board.example.com")), "{o}");
        }
        // Its own origin still works, even when that is a loopback one (a tunnel, a proxy).
        assert!(public.allows(Some("http://localhost:8080"), Some("localhost:8080")));
        assert!(public.allows(Some("https://board.example.com"), Some("board.example.com")));
    }

    #[test]
    fn own_origin_is_allowed_whatever_the_scheme() {
        let p = policy(&[]);
        assert!(p.allows(Some("https://board.example.com"), Some("board.example.com")));
        assert!(p.allows(
            Some("http://Board.Example.com:8080"),
            Some("board.example.com:8080")
        ));
        assert!(!p.allows(Some("https://board.example.com"), Some("other.example.com")));
        assert!(!p.allows(
            Some("https://board.example.com:444"),
            Some("board.example.com")
        ));
    }

    #[test]
    fn local_development_origins_are_allowed_over_http_only() {
        let p = policy(&[]);
        for o in [
            "http://localhost:8081",
            "http://127.0.0.1:3000",
            "http://localhost",
            "http://[::1]:8081",
        ] {
            assert!(p.allows(Some(o), Some("127.0.0.1:8080")), "{o}");
        }
        for o in [
            "https://localhost:8081",
            "http://localhost.evil.example",
            "http://localhost:80x",
            "http://127.0.0.1.evil.example:80",
            "http://evil.example/localhost:1",
            "http://user@localhost:1",
        ] {
            assert!(!p.allows(Some(o), Some("127.0.0.1:8080")), "{o}");
        }
    }

    #[test]
    fn foreign_null_and_malformed_origins_are_refused() {
        let p = policy(&[]);
        for o in [
            "https://evil.example",
            "null",
            "",
            "file://",
            "chrome-extension://abc",
            "https://evil.example/",
        ] {
            assert!(!p.allows(Some(o), Some("board.example.com")), "{o}");
        }
    }

    #[test]
    fn lookalike_origins_are_refused() {
        let p = policy(&["https://board.example.com"]);
        let host = Some("board.example.com");
        for o in [
            // The real host as a subdomain or a prefix of a foreign one.
            "https://board.example.com.evil.com",
            "https://board.example.comevil.com",
            "https://evilboard.example.com",
            "https://host.evil.com",
            // Credentials, paths, queries and fragments that read like the real host.
            "https://board.example.com@evil.com",
            "https://evil.com@board.example.com",
            "https://evil.com/board.example.com",
            "https://evil.com?board.example.com",
            "https://evil.com#board.example.com",
            // Other schemes, opaque and missing origins, encodings, whitespace, lists.
            "ws://board.example.com",
            "wss://board.example.com",
            "ftp://board.example.com",
            "//board.example.com",
            "board.example.com",
            "null",
            "NULL",
            "https://board%2eexample.com",
            "https://b\u{43e}ard.example.com",
            " https://board.example.com",
            "https://board.example.com ",
            "https://board.example.com, https://evil.com",
            "https://board.example.com.",
            "https://board.example.com:443",
            "https://board.example.com:",
        ] {
            assert!(!p.allows(Some(o), host), "{o}");
            assert!(!p.allows(Some(o), Some("node1:8080")), "{o}");
        }
        // Case is not a trick: origins and hosts compare case-insensitively, as DNS does.
        assert!(p.allows(Some("HTTPS://BOARD.EXAMPLE.COM"), Some("node1:8080")));
        assert!(p.allows(Some("https://Board.Example.com"), host));
    }

    #[test]
    fn lookalikes_of_local_development_origins_are_refused() {
        let p = policy(&[]);
        for o in [
            "http://localhost.evil.com",
            "http://localhost.evil.com:8080",
            "http://localhost:8080.evil.com",
            "http://localhost:8080@evil.com",
            "http://evil.com@localhost:8080",
            "http://127.0.0.1.nip.io",
            "http://127.0.0.2:8080",
            "http://0.0.0.0:8080",
            "http://[::1].evil.com",
            "http://[::ffff:127.0.0.1]:8080",
            "http://localhost:123456",
            "http://localhost:",
            "http://xlocalhost",
            "https://localhost",
        ] {
            assert!(!p.allows(Some(o), Some("board.example.com")), "{o}");
        }
        assert!(p.allows(Some("HTTP://LOCALHOST:8081"), Some("board.example.com")));
    }

    #[test]
    fn configured_origins_are_matched_exactly_after_normalizing() {
        let p = policy(&["https://Board.Example.com/"]);
        assert!(p.allows(Some("https://board.example.com"), Some("node1:8080")));
        assert!(!p.allows(Some("http://board.example.com"), Some("node1:8080")));
        assert!(!p.allows(
            Some("https://board.example.com.evil.example"),
            Some("node1:8080")
        ));
        assert!(OriginPolicy::new(&["not an origin".to_string()], true).is_err());
    }

    #[test]
    fn a_missing_origin_is_a_non_browser_client_and_allowed() {
        assert!(policy(&[]).allows(None, None));
        assert!(policy(&[]).allows(None, Some("board.example.com")));
    }
}
