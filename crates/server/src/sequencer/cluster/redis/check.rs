//! What is checked before a node starts serving: a mistake an operator can only fix by
//! restarting the node with other settings (credentials Redis refuses, a Redis too old for
//! sharded pub/sub, a Redis Cluster given as one Redis or the other way round, a certificate
//! not trusted, TLS asked of a Redis without it or the other way round) stops it at once with
//! a message naming the fix, instead of a node that never becomes ready. A Redis that is not
//! reachable yet is no such mistake: the node starts, and is ready once Redis answers.

use std::time::Duration;

use super::resp::{self, Reply};
use super::subscriber::redacted;
use super::tls::{self, CERTIFICATE_REFUSED, CLIENT_CERTIFICATE_ASKED, Tls};
use crate::config::{ClusterConfig, RedisAt};

/// How long each Redis given may take to answer the checks.
const WAIT: Duration = Duration::from_secs(3);

/// Checks the settings of `config`, and every Redis it names that answers; `Err` is a message
/// for the operator.
pub async fn check(config: &ClusterConfig) -> Result<(), String> {
    let (urls, cluster) = match &config.redis {
        RedisAt::One(url) => (std::slice::from_ref(url), false),
        RedisAt::Cluster(seeds) => (&seeds[..], true),
    };
    let tls = Tls::new(config.redis_ca.as_deref()).map_err(|e| format!("--redis-ca-file: {e}"))?;
    if tls.has_ca_file() && !urls.iter().any(|u| tls::is_tls(u)) {
        return Err(
            "--redis-ca-file is given, but no Redis URL asks for TLS: give them as rediss://…"
                .into(),
        );
    }
    let mut unreachable = Vec::new();
    for url in urls {
        match check_one(url, cluster, &tls).await {
            Ok(()) => {}
            Err(Failure::Unreachable(why)) => unreachable.push(format!("{}: {why}", redacted(url))),
            Err(Failure::Fatal(why)) => return Err(why),
        }
    }
    if !unreachable.is_empty() {
        tracing::warn!(
            "cannot reach Redis yet ({}); the node starts, and is ready once it answers",
            unreachable.join("; ")
        );
    }
    Ok(())
}

enum Failure {
    /// Not answering (yet): not the operator's settings.
    Unreachable(String),
    /// Answering, and saying these settings cannot work.
    Fatal(String),
}

/// Whether a Redis error reply refuses the credentials (or their rights).
fn refuses_credentials(error: &str) -> bool {
    ["WRONGPASS", "NOAUTH", "NOPERM", "invalid password"]
        .iter()
        .any(|code| error.contains(code))
}

async fn check_one(url: &str, cluster: bool, tls: &Tls) -> Result<(), Failure> {
    let shown = redacted(url);
    let scheme = if tls::is_tls(url) { "rediss" } else { "redis" };
    let (mut reader, mut writer) = match resp::open(url, tls, "kokuban:check", WAIT).await {
        Ok(c) => c,
        Err(e) if e.0.starts_with("bad Redis URL") || e.0.starts_with("unsupported") => {
            return Err(Failure::Fatal(format!("{shown}: {}", e.0)));
        }
        Err(e) if e.0.contains(CERTIFICATE_REFUSED) => {
            let fix = if tls.has_ca_file() {
                "check that the CA of --redis-ca-file signed it, and that it names the host \
                 as the URL gives it"
            } else {
                "give the CA that signed it with --redis-ca-file, and check that it names the \
                 host as the URL gives it"
            };
            return Err(Failure::Fatal(format!("Redis at {shown}: {}: {fix}", e.0)));
        }
        Err(e) if e.0.contains(CLIENT_CERTIFICATE_ASKED) => {
            return Err(Failure::Fatal(format!(
                "Redis at {shown}: {}: a node presents no client certificate; set \
                 tls-auth-clients to no (or optional) on Redis",
                e.0
            )));
        }
        Err(e) if e.0.contains("NOAUTH") => {
            return Err(Failure::Fatal(format!(
                "Redis at {shown} asks for a password: give it in the URL, with the ACL user if \
                 there is one: {scheme}://USER:PASSWORD@HOST:PORT (or \
                 {scheme}://:PASSWORD@HOST:PORT)"
            )));
        }
        Err(e) if refuses_credentials(&e.0) => {
            return Err(Failure::Fatal(format!(
                "Redis at {shown} refused the credentials ({}): give the password, and the \
                 ACL user if there is one, in the URL: {scheme}://USER:PASSWORD@HOST:PORT",
                e.0
            )));
        }
        // Not answering as the URL's scheme asks: maybe answering the other way.
        Err(e) if tls::is_tls(url) || e.0.contains(resp::CLOSED_UNANSWERED) => {
            return match resp::speaks_the_other_way(url, tls, WAIT).await {
                Some(false) => Err(Failure::Fatal(format!(
                    "Redis at {shown} does not speak TLS: give it as redis://… rather than \
                     rediss://…"
                ))),
                Some(true) => Err(Failure::Fatal(format!(
                    "Redis at {shown} expects TLS: give it as rediss://… rather than redis://… \
                     (with --redis-ca-file if a private CA signed its certificate)"
                ))),
                None => Err(Failure::Unreachable(e.0)),
            };
        }
        Err(e) => return Err(Failure::Unreachable(e.0)),
    };
    let mut out = Vec::new();
    resp::encode(&mut out, &[b"INFO", b"server"]);
    resp::encode(&mut out, &[b"INFO", b"cluster"]);
    let answers = async {
        writer.write(&out).await?;
        Ok::<_, super::Unreachable>((reader.read().await?, reader.read().await?))
    };
    let (server, cluster_info) = match tokio::time::timeout(WAIT, answers).await {
        Ok(Ok(answers)) => answers,
        Ok(Err(e)) => return Err(Failure::Unreachable(e.0)),
        Err(_) => return Err(Failure::Unreachable("no answer in time".into())),
    };
    // An ACL user may be denied INFO: then there is nothing more to check here.
    let (Some(server), Some(cluster_info)) = (text(&server), text(&cluster_info)) else {
        return Ok(());
    };
    let field = |info: &str, name: &str| -> Option<String> {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    };
    if let Some(version) = field(&server, "redis_version") {
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 7 {
            return Err(Failure::Fatal(format!(
                "Redis at {shown} is version {version}, without sharded pub/sub: Kokuban needs \
                 Redis 7.0 or later, or Valkey"
            )));
        }
    }
    let enabled = field(&cluster_info, "cluster_enabled").as_deref() == Some("1");
    match (cluster, enabled) {
        (false, true) => Err(Failure::Fatal(format!(
            "Redis at {shown} is a node of a Redis Cluster: give its nodes with --redis-cluster \
             instead of --redis-url"
        ))),
        (true, false) => Err(Failure::Fatal(format!(
            "Redis at {shown} is not a Redis Cluster node: give a single Redis with --redis-url \
             instead of --redis-cluster"
        ))),
        _ => Ok(()),
    }
}

/// The text of a bulk reply (`None` for an error, as a denied INFO).
fn text(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_errors_are_told_from_others() {
        assert!(refuses_credentials(
            "AUTH refused: WRONGPASS invalid username-password pair or user is disabled."
        ));
        assert!(refuses_credentials(
            "CLIENT SETNAME answered Error(\"NOAUTH Authentication required.\")"
        ));
        assert!(!refuses_credentials(
            "127.0.0.1:1: Connection refused (os error 111)"
        ));
    }
}
