//! A real `rsyslogd` as a test's child process, and the certificates a TLS test needs.
//!
//! Shared by test files through `#[path = "support/rsyslog.rs"] mod rsyslog;`, also by
//! crates/server/tests (`#[path = "../../io/tests/support/rsyslog.rs"]`). Without the tools a test skips, unless
//! STORYLINE_REQUIRE_TOOLS=1 (scripts/test.sh sets it after installing them), when it fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tool's path, looking in PATH and the sbin directories (rsyslogd lives in /usr/sbin).
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// rsyslog's GnuTLS network stream driver (package rsyslog-gnutls), wherever the distribution put
/// rsyslog's modules.
pub fn gtls_module() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    for lib in ["/usr/lib", "/usr/lib64", "/lib"] {
        candidates.push(Path::new(lib).join("rsyslog/lmnsd_gtls.so"));
        if let Ok(entries) = std::fs::read_dir(lib) {
            for e in entries.flatten() {
                candidates.push(e.path().join("rsyslog/lmnsd_gtls.so"));
            }
        }
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// `rsyslogd`'s path if it (and, with `tls`, its gtls driver) is installed; `None` to skip the test.
/// With STORYLINE_REQUIRE_TOOLS=1 a missing tool fails the test instead.
pub fn rsyslogd(tls: bool) -> Option<PathBuf> {
    let bin = tool("rsyslogd");
    let driver = if tls { gtls_module() } else { None };
    if bin.is_some() && (!tls || driver.is_some()) {
        return bin;
    }
    let msg = format!(
        "missing rsyslogd ({bin:?}){}: install with `apt-get install -y rsyslog rsyslog-gnutls` \
         (scripts/test.sh does this)",
        if tls {
            format!(" or its gtls driver ({driver:?})")
        } else {
            String::new()
        }
    );
    if std::env::var("STORYLINE_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("STORYLINE_REQUIRE_TOOLS=1 and {msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `rsyslogd -n` with the test's own configuration (no imuxsock/imklog: no system log is
/// touched); killed by its own pid when dropped, however the test ends.
pub struct Rsyslogd {
    child: Child,
    pub dir: PathBuf,
}

impl Rsyslogd {
    /// Writes `conf` (`{work}` in it is replaced by `dir`, rsyslog's work directory) and starts
    /// rsyslogd; returns once it accepts TCP connections on 127.0.0.1:`port`.
    pub fn start(bin: &Path, dir: &Path, conf: &str, port: u16) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("rsyslog.conf");
        std::fs::write(&path, conf.replace("{work}", &dir.display().to_string())).unwrap();
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&path)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("rsyslogd.out")).unwrap())
            .stderr(std::fs::File::create(dir.join("rsyslogd.err")).unwrap())
            .spawn()
            .expect("rsyslogd starts");
        let mut me = Self {
            child,
            dir: dir.to_path_buf(),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("rsyslogd exited ({status}): {}", me.diagnostics());
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "rsyslogd does not listen on {port}: {}",
                me.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    /// What rsyslogd printed, for assertion messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "rsyslogd output: {}{}",
            std::fs::read_to_string(self.dir.join("rsyslogd.out")).unwrap_or_default(),
            std::fs::read_to_string(self.dir.join("rsyslogd.err")).unwrap_or_default()
        )
    }
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PEM files of a test PKI.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A CA, a `localhost` server certificate and a client certificate it signed, written in `dir`.
pub fn pki(dir: &Path, ca_name: &str) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    std::fs::create_dir_all(dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| {
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server, server_key) = leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let (client, client_key) = leaf("storyline-sink", ExtendedKeyUsagePurpose::ClientAuth);
    let out = Pki {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    };
    std::fs::write(&out.ca, ca.pem()).unwrap();
    std::fs::write(&out.server_cert, server).unwrap();
    std::fs::write(&out.server_key, server_key).unwrap();
    std::fs::write(&out.client_cert, client).unwrap();
    std::fs::write(&out.client_key, client_key).unwrap();
    out
}
