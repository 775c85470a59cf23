//! Throwaway certificates for `rediss://` tests, made with the `openssl` command line: a CA, a
//! certificate it signs for the loopback address (`127.0.0.1` and `localhost`), and a second,
//! unrelated CA, the wrong one to trust.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA, a server certificate and key it signed, and an unrelated CA, as PEM files in a
/// temporary directory that lives as long as this value.
#[derive(Debug)]
pub struct Certs {
    /// The CA that signed [`cert`](Self::cert).
    pub ca: PathBuf,
    /// The server's certificate, for `127.0.0.1` and `localhost`.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
    dir: tempfile::TempDir,
}

/// Runs `openssl` with the words of `command` in `dir`, panicking with what it said if it
/// fails.
fn openssl(dir: &Path, command: &str) {
    let args: Vec<&str> = command.split_whitespace().collect();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl runs (install openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {command} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new P-256 key (fast to make, unlike RSA).
const KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// A self-signed CA named `name`, as `<name>.crt` and `<name>.key` in `dir`.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &format!(
            "req -x509 {KEY} -days 2 -subj /CN={name} -keyout {name}.key -out {name}.crt \
             -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign"
        ),
    );
}

impl Certs {
    /// Makes a new set (a few tens of milliseconds: elliptic-curve keys).
    pub fn new() -> Certs {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        ca(d, "ca");
        ca(d, "other-ca");
        openssl(
            d,
            &format!("req {KEY} -subj /CN=127.0.0.1 -keyout redis.key -out redis.csr"),
        );
        std::fs::write(
            d.join("redis.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("writing the extensions");
        openssl(
            d,
            "x509 -req -in redis.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
             -extfile redis.ext -out redis.crt",
        );
        Certs {
            ca: d.join("ca.crt"),
            cert: d.join("redis.crt"),
            key: d.join("redis.key"),
            other_ca: d.join("other-ca.crt"),
            dir,
        }
    }

    /// The `redis-server` arguments that open a TLS port `port` with this certificate
    /// (clients need no certificate of their own, as with hosted Redis).
    pub fn redis_args(&self, port: u16) -> Vec<String> {
        let path = |p: &PathBuf| p.display().to_string();
        vec![
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path(&self.cert),
            "--tls-key-file".into(),
            path(&self.key),
            "--tls-ca-cert-file".into(),
            path(&self.ca),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Certs {
    fn default() -> Self {
        Self::new()
    }
}
