//! A small RDP client for the tests: ironrdp-connector stepped by hand over tokio, TLS with rustls (any
//! certificate), CredSSP with NTLM, stopping at a chosen point, then reading what the server sends until it
//! closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ironrdp_connector::credssp::CredsspSequence;
use ironrdp_connector::{
    BitmapConfig, ClientConnector, ClientConnectorState, Config, Credentials, DesktopSize,
    Sequence as _, ServerName, state_downcast,
};
use ironrdp_core::WriteBuf;
use ironrdp_pdu::PduHint;
use ironrdp_pdu::gcc;
use ironrdp_pdu::rdp::capability_sets::{self, MajorPlatformType};
use ironrdp_pdu::rdp::client_info::{PerformanceFlags, TimezoneInfo};
use rustls::pki_types::ServerName as TlsName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Every wait of the tests is bounded by this; none is asserted on.
pub const BOUND: Duration = Duration::from_secs(60);

/// Where the client stops driving the sequence and only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    /// The MCS Connect Initial is sent.
    ConnectInitialSent,
    /// The Client Info PDU is sent.
    ClientInfoSent,
    /// The connection is active; the client then closes.
    Connected,
}

/// What the client saw.
#[derive(Debug)]
pub struct ClientRun {
    /// The client reached its stop point.
    pub reached: bool,
    /// What it read after its stop point (TLS plaintext), until the server closed.
    pub after_stop: Vec<u8>,
    /// The server closed the connection (end of stream, with or without close_notify).
    pub eof: bool,
    /// An error before the stop point.
    pub error: Option<String>,
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    None,
}

struct Client {
    stream: Stream,
    buf: Vec<u8>,
}

impl Client {
    async fn read_some(&mut self) -> Result<usize, String> {
        let mut chunk = vec![0u8; 16 * 1024];
        let n = match &mut self.stream {
            Stream::Tcp(s) => s.read(&mut chunk).await,
            Stream::Tls(s) => s.read(&mut chunk).await,
            Stream::None => return Err("no stream".to_owned()),
        }
        .map_err(|e| e.to_string())?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    async fn read_frame(&mut self, hint: &dyn PduHint) -> Result<Vec<u8>, String> {
        for _ in 0..10_000 {
            if let Some((_, len)) = hint.find_size(&self.buf).map_err(|e| e.to_string())?
                && self.buf.len() >= len
            {
                return Ok(self.buf.drain(..len).collect());
            }
            if self.read_some().await? == 0 {
                return Err("the server closed the connection".to_owned());
            }
        }
        Err("too many reads for one frame".to_owned())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        match &mut self.stream {
            Stream::Tcp(s) => s.write_all(bytes).await,
            Stream::Tls(s) => match s.write_all(bytes).await {
                Ok(()) => s.flush().await,
                Err(e) => Err(e),
            },
            Stream::None => return Err("no stream".to_owned()),
        }
        .map_err(|e| e.to_string())
    }
}

fn config(user: &str, password: &str) -> Config {
    Config {
        desktop_size: DesktopSize {
            width: 1024,
            height: 768,
        },
        monitor_layout: None,
        desktop_scale_factor: 0,
        desktop_physical_size: None,
        desktop_orientation: None,
        device_scale_factor: None,
        monitor_extended_layout: None,
        relative_mouse_input: false,
        enable_tls: true,
        enable_credssp: true,
        enable_standard_rdp_security: false,
        credentials: Credentials::UsernamePassword {
            username: user.to_owned(),
            password: password.to_owned(),
        },
        domain: None,
        client_build: 0,
        client_name: "rdptrace-test".to_owned(),
        keyboard_type: gcc::KeyboardType::IBM_ENHANCED,
        keyboard_subtype: 0,
        keyboard_functional_keys_count: 12,
        keyboard_layout: 0x409,
        connection_type: gcc::ConnectionType::Lan,
        ime_file_name: String::new(),
        bitmap: None::<BitmapConfig>,
        dig_product_id: String::new(),
        client_dir: String::new(),
        alternate_shell: String::new(),
        work_dir: String::new(),
        remote_application_mode: false,
        rail_support_level: capability_sets::RailSupportLevel::empty(),
        platform: MajorPlatformType::UNIX,
        hardware_id: None,
        request_data: None,
        autologon: false,
        enable_audio_playback: false,
        enable_audio_capture: false,
        performance_flags: PerformanceFlags::default(),
        license_cache: None,
        timezone_info: TimezoneInfo::default(),
        compression_type: None,
        enable_server_pointer: false,
        pointer_software_rendering: false,
        multitransport_flags: None,
        support_dyn_vc_gfx_protocol: false,
    }
}

async fn tls(
    tcp: TcpStream,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Vec<u8>), String> {
    // The probe's own TLS client: it records the chain and checks the handshake signatures.
    let config = rdptrace::probe::tls::client_config(None, None, Default::default())
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = TlsName::try_from("rdptrace-target").map_err(|e| e.to_string())?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no server certificate")?
        .clone();
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| e.to_string())?;
    let key = parsed.public_key().subject_public_key.data.to_vec();
    Ok((stream, key))
}

/// Connects to `addr` as `user`/`password`, drives the connection sequence to `stop`, then reads until the
/// server closes. Every wait is bounded by [`BOUND`].
pub async fn run(addr: SocketAddr, user: &str, password: &str, stop: StopAt) -> ClientRun {
    match tokio::time::timeout(BOUND, run_inner(addr, user, password, stop)).await {
        Ok(run) => run,
        Err(_) => ClientRun {
            reached: false,
            after_stop: Vec::new(),
            eof: false,
            error: Some("the test client's bound passed".to_owned()),
        },
    }
}

async fn run_inner(addr: SocketAddr, user: &str, password: &str, stop: StopAt) -> ClientRun {
    let mut client = Client {
        stream: Stream::None,
        buf: Vec::new(),
    };
    let reached = drive(&mut client, addr, user, password, stop).await;
    let mut run = ClientRun {
        reached: reached.is_ok(),
        after_stop: Vec::new(),
        eof: false,
        error: reached.err(),
    };
    if stop == StopAt::Connected && run.reached {
        // Leave as a client does when its user closes it: FIN (after close_notify).
        if let Stream::Tls(s) = &mut client.stream {
            let _ = s.shutdown().await;
        }
    }
    // Read what the server still sends, until it closes.
    for _ in 0..10_000 {
        match client.read_some().await {
            Ok(0) => {
                run.eof = true;
                break;
            }
            Ok(_) => {}
            Err(e) => {
                run.eof = e.contains("close_notify") || e.contains("eof");
                if !run.eof && run.error.is_none() {
                    run.error = Some(e);
                }
                break;
            }
        }
    }
    run.after_stop = core::mem::take(&mut client.buf);
    run
}

async fn drive(
    client: &mut Client,
    addr: SocketAddr,
    user: &str,
    password: &str,
    stop: StopAt,
) -> Result<(), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let local = tcp.local_addr().map_err(|e| e.to_string())?;
    client.stream = Stream::Tcp(tcp);
    let mut connector = ClientConnector::new(config(user, password), local);
    let mut out = WriteBuf::new();
    for _ in 0..1_000 {
        let state = state_downcast::<ClientConnectorState>(connector.state())
            .ok_or("unknown connector state")?;
        let done = matches!(
            (stop, state),
            (
                StopAt::ConnectInitialSent,
                ClientConnectorState::BasicSettingsExchangeWaitResponse { .. }
            ) | (
                StopAt::ClientInfoSent,
                ClientConnectorState::ConnectTimeAutoDetection { .. }
                    | ClientConnectorState::LicensingExchange { .. }
            ) | (StopAt::Connected, ClientConnectorState::Connected { .. })
        );
        if done {
            return Ok(());
        }
        if connector.should_perform_security_upgrade() {
            let Stream::Tcp(tcp) = core::mem::replace(&mut client.stream, Stream::None) else {
                return Err("tls twice".to_owned());
            };
            let (stream, key) = tls(tcp).await?;
            client.stream = Stream::Tls(Box::new(stream));
            connector.mark_security_upgrade_as_done();
            if let Some(ClientConnectorState::Credssp { selected_protocol }) =
                state_downcast::<ClientConnectorState>(connector.state())
            {
                let selected_protocol = *selected_protocol;
                credssp(client, selected_protocol, user, password, key).await?;
                connector.mark_credssp_as_done();
            }
            continue;
        }
        let input = match connector.next_pdu_hint() {
            Some(hint) => client.read_frame(hint).await?,
            None => Vec::new(),
        };
        out.clear();
        connector
            .step(&input, None, &mut out)
            .map_err(|e| e.to_string())?;
        if !out.filled().is_empty() {
            let bytes = out.filled().to_vec();
            client.write(&bytes).await?;
        }
    }
    Err("the connection sequence did not end".to_owned())
}

async fn credssp(
    client: &mut Client,
    selected_protocol: ironrdp_pdu::nego::SecurityProtocol,
    user: &str,
    password: &str,
    server_key: Vec<u8>,
) -> Result<(), String> {
    let (mut sequence, mut request) = CredsspSequence::init(
        Credentials::UsernamePassword {
            username: user.to_owned(),
            password: password.to_owned(),
        },
        None,
        selected_protocol,
        ServerName::new("rdptrace-target"),
        server_key,
        None,
    )
    .map_err(|e| e.to_string())?;
    for _ in 0..10 {
        let result = {
            let mut generator = sequence.process_ts_request(request);
            generator.resolve_to_result()
        }
        .map_err(|e| e.to_string())?;
        let mut out = WriteBuf::new();
        sequence
            .handle_process_result(result, &mut out)
            .map_err(|e| e.to_string())?;
        if !out.filled().is_empty() {
            let bytes = out.filled().to_vec();
            client.write(&bytes).await?;
        }
        let Some(hint) = sequence.next_pdu_hint() else {
            return Ok(());
        };
        let frame = client.read_frame(hint).await?;
        match sequence
            .decode_server_message(&frame)
            .map_err(|e| e.to_string())?
        {
            Some(next) => request = next,
            None => return Ok(()),
        }
    }
    Err("credssp did not end".to_owned())
}
