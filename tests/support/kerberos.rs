//! Real Kerberos peers for the tests, on loopback, started by the tests: an MIT KDC with a realm of its own
//! (private krb5.conf and kdc.conf through KRB5_CONFIG and KRB5_KDC_PROFILE, its database in a temporary
//! directory), the MS-KKDCP KDC proxy of python3-kdcproxy served over HTTPS by Python's wsgiref, and
//! FreeRDP 3's shadow server with NLA and a keytab.
//!
//! The RDP target's name is `localhost`, which resolves to 127.0.0.1 everywhere without a change to the
//! system's files: its service principal is `TERMSRV/localhost`.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{ChildGuard, free_port, has_program, require, wait_listening};

/// The realm of the tests' KDC.
pub const REALM: &str = "RDPTRACE.TEST";
/// The user and its password (published test values).
pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-test-only";
/// The name the tests connect to, and its service principal.
pub const HOST: &str = "localhost";
pub const SPN: &str = "TERMSRV/localhost";

/// Whether an MIT KDC can run here.
/// `rdptrace serve --once --scenario NAME` with the realm's keytab, the target's user the realm's, on a
/// port of its own; stdout piped (the caller reads the port from it), stderr closed.
pub fn serve_command(name: &str, keytab: &Path) -> Command {
    let mut cmd = super::rdptrace();
    cmd.args([
        "serve",
        "--once",
        "--listen",
        "127.0.0.1:0",
        "--scenario",
        name,
    ])
    .args([
        "--host-name",
        HOST,
        "--realm",
        REALM,
        "--read-timeout",
        "10",
    ])
    .arg("--keytab")
    .arg(keytab)
    .args(["--user", USER, "--domain", REALM])
    .env("RDPTRACE_PASSWORD", PASSWORD)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    cmd
}

pub fn kdc_available() -> bool {
    require(
        ["krb5kdc", "kdb5_util", "kadmin.local"]
            .iter()
            .all(|p| has_program(p) || Path::new("/usr/sbin").join(p).is_file()),
        "an MIT KDC (Debian packages krb5-kdc, krb5-admin-server, krb5-user)",
    )
}

/// Whether FreeRDP 3's shadow server and Xvfb can run here.
pub fn shadow3_available() -> bool {
    require(
        has_program("freerdp-shadow-cli3") && has_program("Xvfb"),
        "freerdp-shadow-cli3 and Xvfb (freerdp3-shadow-x11 from bookworm-backports, xvfb)",
    )
}

/// Whether python3-kdcproxy can run here (Debian's python3, not another on PATH).
pub fn kdcproxy_available() -> bool {
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import kdcproxy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require(ok, "python3-kdcproxy (Debian package) for /usr/bin/python3")
}

fn sbin(program: &str) -> PathBuf {
    let p = Path::new("/usr/sbin").join(program);
    if p.is_file() {
        p
    } else {
        PathBuf::from(program)
    }
}

/// An MIT KDC for [`REALM`] on a loopback port, stopped (by its PID) when dropped.
pub struct Kdc {
    pub dir: PathBuf,
    pub port: u16,
    pub krb5_conf: PathBuf,
    kdc_conf: PathBuf,
    guard: Option<ChildGuard>,
}

impl Kdc {
    /// Creates the realm's database with [`USER`] and [`SPN`], and starts the KDC.
    pub fn start(dir: &Path) -> Result<Kdc, String> {
        let mut kdc = Kdc::prepare(dir, free_port())?;
        kdc.restart()?;
        Ok(kdc)
    }

    /// Creates the realm's database with [`USER`] and [`SPN`] for a KDC on 127.0.0.1:`port`, without
    /// starting it (a test that runs the KDC elsewhere, in a network namespace, starts it with
    /// [`Kdc::command`]).
    pub fn prepare(dir: &Path, port: u16) -> Result<Kdc, String> {
        let dir = dir.join("kdc");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let krb5_conf = dir.join("krb5.conf");
        std::fs::write(
            &krb5_conf,
            format!(
                "[libdefaults]\n  default_realm = {REALM}\n  dns_lookup_kdc = false\n  dns_lookup_realm = false\n  rdns = false\n[realms]\n  {REALM} = {{\n    kdc = 127.0.0.1:{port}\n  }}\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let kdc_conf = dir.join("kdc.conf");
        let d = dir.display();
        std::fs::write(
            &kdc_conf,
            format!(
                "[kdcdefaults]\n  kdc_listen = 127.0.0.1:{port}\n  kdc_tcp_listen = 127.0.0.1:{port}\n[realms]\n  {REALM} = {{\n    database_name = {d}/principal\n    key_stash_file = {d}/stash\n    acl_file = {d}/kadm5.acl\n    default_principal_flags = +preauth\n    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n  }}\n[logging]\n  kdc = FILE:{d}/kdc.log\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let kdc = Kdc {
            dir,
            port,
            krb5_conf,
            kdc_conf,
            guard: None,
        };
        kdc.run(
            &sbin("kdb5_util"),
            &["create", "-s", "-r", REALM, "-P", "master-test-only"],
        )?;
        kdc.kadmin(&format!("addprinc -pw {PASSWORD} {USER}"))?;
        kdc.kadmin(&format!("addprinc -randkey {SPN}"))?;
        Ok(kdc)
    }

    /// The KDC's command line (`krb5kdc` in the foreground, with the realm's configuration in its
    /// environment), for a test that starts it itself.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(sbin("krb5kdc"));
        self.env(&mut cmd);
        cmd.args(["-n", "-r", REALM]);
        cmd
    }

    /// The environment the KDC and its clients need: KRB5_CONFIG and KRB5_KDC_PROFILE.
    pub fn env_vars(&self) -> [(&'static str, &Path); 2] {
        [
            ("KRB5_CONFIG", self.krb5_conf.as_path()),
            ("KRB5_KDC_PROFILE", self.kdc_conf.as_path()),
        ]
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("KRB5_CONFIG", &self.krb5_conf)
            .env("KRB5_KDC_PROFILE", &self.kdc_conf);
    }

    fn run(&self, program: &Path, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(program);
        self.env(&mut cmd);
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} {args:?}: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// One kadmin.local query on the realm's database.
    pub fn kadmin(&self, query: &str) -> Result<String, String> {
        self.run(&sbin("kadmin.local"), &["-r", REALM, "-q", query])
    }

    /// Writes the keys of `principal` to a new keytab at `path` (each call gives the principal new keys).
    pub fn ktadd(&self, principal: &str, path: &Path) -> Result<(), String> {
        self.kadmin(&format!("ktadd -k {} {principal}", path.display()))
            .map(|_| ())
    }

    /// Stops the KDC (by its PID).
    pub fn stop(&mut self) {
        self.guard = None;
    }

    /// Starts the KDC again on the same port.
    pub fn restart(&mut self) -> Result<(), String> {
        self.guard = None;
        let mut cmd = Command::new(sbin("krb5kdc"));
        self.env(&mut cmd);
        let log = std::fs::File::create(self.dir.join("krb5kdc.out")).map_err(|e| e.to_string())?;
        let child = cmd
            .args(["-n", "-r", REALM])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("krb5kdc: {e}"))?;
        self.guard = Some(ChildGuard(child));
        if !wait_listening(self.port, Duration::from_secs(10)) {
            return Err(format!("krb5kdc did not listen on {}", self.port));
        }
        Ok(())
    }

    /// The KDC's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kdc.log")).unwrap_or_default()
    }
}

/// FreeRDP 3's shadow server with NLA and `keytab` on a free port, as a Kerberos acceptor of [`REALM`];
/// its port and guards.
pub fn start_shadow3(
    dir: &Path,
    kdc: &Kdc,
    keytab: &Path,
) -> Result<(u16, (ChildGuard, ChildGuard)), String> {
    let keytab_arg = format!("/keytab:{}", keytab.display());
    super::peers::start_shadow(
        dir,
        "freerdp-shadow-cli3",
        &["/sec:nla", &keytab_arg],
        &[
            ("KRB5_CONFIG", kdc.krb5_conf.as_os_str()),
            ("KRB5_KTNAME", keytab.as_os_str()),
        ],
    )
}

/// A test certification authority and a certificate it issued for `localhost` and 127.0.0.1 (openssl):
/// the CA's PEM file, the certificate's and its key's.
pub fn test_certificate(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let ca_key = dir.join("ca.key");
    let ca = dir.join("ca.pem");
    let key = dir.join("leaf.key");
    let csr = dir.join("leaf.csr");
    let cert = dir.join("leaf.pem");
    let ext = dir.join("leaf.ext");
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        .map_err(|e| e.to_string())?;
    let openssl = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("openssl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    let p = |p: &Path| p.display().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p(&ca_key),
        "-out",
        &p(&ca),
        "-days",
        "2",
        "-subj",
        "/CN=rdptrace test KDC proxy CA",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
        "-subj",
        "/CN=localhost",
    ])?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&ca_key),
        "-CAcreateserial",
        "-out",
        &p(&cert),
        "-days",
        "2",
        "-extfile",
        &p(&ext),
    ])?;
    Ok((ca, cert, key))
}

/// python3-kdcproxy over HTTPS on a free loopback port, forwarding to `kdc`; its URL and guard.
pub fn start_kdcproxy(
    dir: &Path,
    kdc: &Kdc,
    cert: &Path,
    key: &Path,
) -> Result<(String, ChildGuard), String> {
    let conf = dir.join("kdcproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nuse_dns = false\n[{REALM}]\nkerberos = kerberos+tcp://127.0.0.1:{}\n",
            kdc.port
        ),
    )
    .map_err(|e| e.to_string())?;
    let script = dir.join("serve_kdc_proxy.py");
    std::fs::write(
        &script,
        r#"import ssl, sys
from wsgiref.simple_server import make_server, WSGIRequestHandler
import kdcproxy

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

httpd = make_server("127.0.0.1", 0, kdcproxy.Application(), handler_class=Quiet)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
print(httpd.server_port, flush=True)
httpd.serve_forever()
"#,
    )
    .map_err(|e| e.to_string())?;
    let log_path = dir.join("kdcproxy.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut child = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(cert)
        .arg(key)
        .env("KDCPROXY_CONFIG", &conf)
        .env("KRB5_CONFIG", &kdc.krb5_conf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("python3 kdcproxy: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout from the KDC proxy")?;
    let guard = ChildGuard(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("the KDC proxy: {e}"))?;
    let port: u16 = line.trim().parse().map_err(|_| {
        format!(
            "the KDC proxy wrote no port: {line:?}: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        )
    })?;
    Ok((format!("https://localhost:{port}/KdcProxy"), guard))
}
