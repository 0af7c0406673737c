//! `rdptrace probe`: arguments, credential intake, output.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{Credentials, Password, ProbeConfig, Security};
use crate::trace::Trace;
use crate::verdict::Verdict;

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Targets: host, host:port, [v6addr]:port (port 3389 by default).
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub options: ProbeOptions,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// How to connect: shared by `probe` and `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeOptions {
    /// User name for NLA and the Client Info PDU. The password comes from RDPTRACE_PASSWORD,
    /// --password-file, or a prompt on a terminal; never from the command line.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Domain of the user (for NTLM: the domain, or the server's name for a local account).
    #[arg(long, short = 'd')]
    pub domain: Option<String>,
    /// Read the password from this file (first line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// What the client requests in the X.224 negotiation.
    #[arg(long, value_enum, default_value_t = Security::Auto)]
    pub security: Security,
    /// Seconds for the whole probe.
    #[arg(long, value_name = "SECONDS", default_value = "20", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Seconds to wait for each answer of the server.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub phase_timeout: Duration,
    /// Seconds to watch the session once it is active.
    #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = parse_seconds)]
    pub watch: Duration,
    /// Fail the TLS phase when the certificate has a problem (expired, self-signed, wrong name, weak key).
    #[arg(long)]
    pub strict_cert: bool,
    /// Append the TLS secrets of the session to this file (NSS key log format, for Wireshark). The
    /// password is then kept out of the Client Info PDU.
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,
    /// Write the session as a pcapng capture (the real bytes in synthesized IP and TCP headers).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Put the TLS secrets into the --pcap file, so that Wireshark and `rdptrace replay` open it decrypted.
    /// The password is then kept out of the Client Info PDU.
    #[arg(long, requires = "pcap")]
    pub embed_secrets: bool,
}

/// How to print: shared by the commands that print traces.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// One JSON document (schema rdptrace/1) per line instead of the timeline.
    #[arg(long)]
    pub json: bool,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("not a number of seconds: {s}"))?;
    if !v.is_finite() || v <= 0.0 || v > 86_400.0 {
        return Err(format!("seconds must be above 0 and at most 86400: {s}"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The password, from the file, the environment or a prompt; `None` without a user.
pub fn read_password(
    user: Option<&str>,
    file: Option<&PathBuf>,
) -> Result<Option<Password>, String> {
    let Some(user) = user else { return Ok(None) };
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let first = text.lines().next().unwrap_or("").to_owned();
        return Ok(Some(Password::new(first)));
    }
    if let Ok(p) = std::env::var("RDPTRACE_PASSWORD") {
        return Ok(Some(Password::new(p)));
    }
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(format!("password for {user}: "))
            .map_err(|e| format!("cannot read the password: {e}"))?;
        return Ok(Some(Password::new(p)));
    }
    Err("a password is needed for --user: set RDPTRACE_PASSWORD, use --password-file FILE, or run on a terminal".to_owned())
}

impl ProbeOptions {
    /// A probe configuration for one target.
    pub fn config(&self, target: &str, password: Option<&Password>) -> Result<ProbeConfig, String> {
        let mut cfg = ProbeConfig::new(target)?;
        cfg.credentials = match (&self.user, password) {
            (Some(user), Some(p)) => Some(Credentials {
                user: user.clone(),
                domain: self.domain.clone(),
                password: p.clone(),
            }),
            _ => None,
        };
        if matches!(self.security, Security::Nla | Security::NlaEx) && cfg.credentials.is_none() {
            return Err("--security nla needs --user (and a password)".to_owned());
        }
        cfg.security = self.security;
        cfg.timeout = self.timeout;
        cfg.phase_timeout = self.phase_timeout;
        cfg.watch = self.watch;
        cfg.strict_cert = self.strict_cert;
        cfg.keylog = self.keylog.clone();
        cfg.pcap = self.pcap.clone();
        cfg.embed_secrets = self.embed_secrets;
        Ok(cfg)
    }
}

/// Prints one trace and its verdict.
pub fn print(trace: &Trace, verdict: &Verdict, output: &OutputArgs, verbose: bool) {
    if output.json {
        println!("{}", crate::report::json::line(trace, verdict));
    } else {
        print!(
            "{}",
            crate::report::text::render(trace, verdict, crate::report::text::Options { verbose })
        );
    }
}

pub fn run(args: ProbeArgs) -> ExitCode {
    let password = match read_password(
        args.options.user.as_deref(),
        args.options.password_file.as_ref(),
    ) {
        Ok(p) => p,
        Err(e) => return crate::cli::usage(e),
    };
    let mut configs = Vec::new();
    for t in &args.targets {
        match args.options.config(t, password.as_ref()) {
            Ok(c) => configs.push(c),
            Err(e) => return crate::cli::usage(e),
        }
    }
    let runtime = match crate::cli::runtime() {
        Ok(r) => r,
        Err(e) => return crate::cli::error(e),
    };
    let verbose = crate::cli::verbosity() > 0;
    let mut worst = 0u8;
    for cfg in &configs {
        let trace = runtime.block_on(super::probe(cfg));
        let verdict = crate::diagnose::diagnose(&trace);
        print(&trace, &verdict, &args.output, verbose);
        let code = crate::cli::exit_code(&verdict);
        if worst == 0 {
            worst = code;
        }
    }
    ExitCode::from(worst)
}
