//! A Redis Cluster's topology as a node reads it: the slot ranges of `CLUSTER SLOTS`, each
//! with its master's URL (the seed's scheme and credentials, the master's own host and port),
//! and the `host:port` that names a shard on `/metrics`.

use redis::Value;

use super::keys::SLOTS;

/// The `host:port` of a Redis URL: what names a shard on `/metrics`.
pub(super) fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// `seed` with its host and port replaced: the scheme and credentials stay.
fn with_host(seed: &str, host: &str, port: i64) -> String {
    let (scheme, rest) = seed.split_once("://").unwrap_or(("redis", seed));
    let authority = rest.split('/').next().unwrap_or(rest);
    let user = authority.rsplit_once('@').map(|(u, _)| u);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    match user {
        Some(u) => format!("{scheme}://{u}@{host}:{port}"),
        None => format!("{scheme}://{host}:{port}"),
    }
}

/// The ranges of a `CLUSTER SLOTS` reply from the node at `asked`, each with its master's URL.
pub(super) fn parse_slots(reply: &Value, asked: &str) -> Option<Vec<(u16, u16, String)>> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    let asked_host = asked
        .split_once("://")
        .map_or(asked, |(_, r)| r)
        .split('/')
        .next()
        .and_then(|a| a.rsplit('@').next())
        .and_then(|a| a.rsplit_once(':'))
        .map(|(h, _)| h.trim_matches(['[', ']']).to_owned())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let Value::Array(parts) = r else {
            return None;
        };
        let int = |v: &Value| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        };
        let first = u16::try_from(int(parts.first()?)?).ok()?;
        let last = u16::try_from(int(parts.get(1)?)?).ok()?;
        if first > last || usize::from(last) >= SLOTS {
            return None;
        }
        let Value::Array(master) = parts.get(2)? else {
            return None;
        };
        let host = match master.first()? {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        // An endpoint Redis does not know ("?" or empty) is the one asked.
        let host = if host.is_empty() || host == "?" {
            asked_host.clone()
        } else {
            host
        };
        let port = int(master.get(1)?)?;
        out.push((first, last, with_host(asked, &host, port)));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_urls_keep_the_seeds_scheme_and_credentials() {
        assert_eq!(
            with_host("redis://127.0.0.1:7000", "127.0.0.1", 7001),
            "redis://127.0.0.1:7001"
        );
        assert_eq!(
            with_host("rediss://app:s3cret@h1:7000/", "10.0.0.2", 7002),
            "rediss://app:s3cret@10.0.0.2:7002"
        );
    }

    #[test]
    fn shards_are_named_by_host_and_port_alone() {
        assert_eq!(host_port("redis://127.0.0.1:7000/"), "127.0.0.1:7000");
        assert_eq!(
            host_port("rediss://u:p@r1.example:6380/0"),
            "r1.example:6380"
        );
        assert_eq!(host_port("redis://:secret@h:1"), "h:1");
    }

    #[test]
    fn cluster_slots_replies_become_ranges() {
        let node = |h: &str, p: i64| {
            Value::Array(vec![
                Value::BulkString(h.as_bytes().to_vec()),
                Value::Int(p),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000),
                node("127.0.0.1", 7003),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node("?", 7001)]),
        ]);
        assert_eq!(
            parse_slots(&reply, "redis://:pw@127.0.0.2:7000").unwrap(),
            vec![
                (0, 5460, "redis://:pw@127.0.0.1:7000".to_owned()),
                (5461, 16383, "redis://:pw@127.0.0.2:7001".to_owned()),
            ]
        );
        let bad = Value::Array(vec![Value::Array(vec![
            Value::Int(9),
            Value::Int(3),
            node("h", 1),
        ])]);
        assert!(parse_slots(&bad, "redis://h:1").is_none());
    }
}
