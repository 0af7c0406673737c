//! What each side sends after the TLS handshake, in order ([MS-RDPBCGR] 1.3.1.1, [MS-CSSP] 3.1.5): the
//! PDUs with their sizes, how often each may come, and what the other side must have sent first.

use super::record::Span;
use super::sizes::sizes;
use crate::trace::{PhaseName, Side};

/// What a record (or a part of one) is taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// [RFC 8446] 4.6.1 a TLS 1.3 NewSessionTicket right after the handshake (encrypted like data).
    SessionTicket,
    /// [MS-CSSP] 2.2.1 a TSRequest of the CredSSP exchange (SPNEGO: Kerberos, or NTLM inside SPNEGO).
    TsRequest,
    /// [MS-CSSP] 3.1.5 step 1, [MS-NLMP] 2.2.1.1: the client's first TSRequest, an NTLM NEGOTIATE_MESSAGE.
    NtlmNegotiate,
    /// [MS-NLMP] 2.2.1.2: the server's NTLM CHALLENGE_MESSAGE.
    NtlmChallenge,
    /// [MS-CSSP] 3.1.5 step 3, [MS-NLMP] 2.2.1.3: the NTLM AUTHENTICATE_MESSAGE with pubKeyAuth.
    NtlmAuthenticate,
    /// [MS-CSSP] 3.1.5 step 4: the server's pubKeyAuth.
    ServerPubKeyAuth,
    /// [MS-CSSP] 3.1.5 step 5: the client's credentials (authInfo).
    AuthInfo,
    /// [MS-CSSP] 2.2.1 a TSRequest that carries only an errorCode (version 3 and later).
    TsRequestError,
    /// [2.2.10.2] Early User Authorization Result PDU.
    EarlyUserAuth,
    /// [2.2.1.3] MCS Connect Initial PDU with GCC Conference Create Request.
    ConnectInitial,
    /// [2.2.1.4] MCS Connect Response PDU with GCC Conference Create Response.
    ConnectResponse,
    /// [2.2.1.5] MCS Erect Domain Request PDU.
    ErectDomain,
    /// [2.2.1.6] MCS Attach User Request PDU.
    AttachUserRequest,
    /// [2.2.1.7] MCS Attach User Confirm PDU.
    AttachUserConfirm,
    /// [2.2.1.8] MCS Channel Join Request PDU.
    ChannelJoinRequest,
    /// [2.2.1.9] MCS Channel Join Confirm PDU.
    ChannelJoinConfirm,
    /// [2.2.1.11] Client Info PDU.
    ClientInfo,
    /// [MS-RDPELE] 2.2.2.1 Server License Request.
    LicenseRequest,
    /// [MS-RDPELE] 2.2.2.2 / 2.2.2.3 / 2.2.2.5 the client's licensing messages.
    LicenseClient,
    /// [MS-RDPELE] 2.2.2.4 Server Platform Challenge.
    PlatformChallenge,
    /// [2.2.1.12.1.3] Licensing Error Message (STATUS_VALID_CLIENT) or [MS-RDPELE] 2.2.2.6 / 2.2.2.7 a license.
    LicenseFinal,
    /// What a server may send before the Demand Active besides licensing: [2.2.15.1] Initiate Multitransport
    /// Request, [2.2.14.1] Auto-Detect Request, [2.2.12.1] Monitor Layout.
    ServerExtra,
    /// The client's answers to those: [2.2.14.2] Auto-Detect Response, [2.2.15.2] Multitransport Response.
    ClientExtra,
    /// [2.2.1.13.1] Server Demand Active PDU (or, in its place, [2.2.13.3.1] a Server Redirection PDU).
    DemandActive,
    /// [2.2.1.13.2] Client Confirm Active PDU.
    ConfirmActive,
    /// [2.2.1.14] / [2.2.1.19] Synchronize PDU.
    Synchronize,
    /// [2.2.1.15] / [2.2.1.16] / [2.2.1.20] / [2.2.1.21] Control PDU.
    Control,
    /// [2.2.1.17] Persistent Key List PDU.
    PersistentKeyList,
    /// [2.2.1.18] Font List PDU.
    FontList,
    /// [2.2.1.22] Font Map PDU.
    FontMap,
    /// Traffic of the active session (fast-path and slow-path updates, input, virtual channels).
    Data,
    /// [2.2.5.1] Set Error Info PDU.
    SetErrorInfo,
    /// [2.2.2.3] MCS Disconnect Provider Ultimatum PDU.
    Ultimatum,
    /// [RFC 5246] 7.2 a TLS alert (close_notify at the end of a session).
    Alert,
}

impl Step {
    /// The phase the step belongs to.
    pub fn phase(self) -> PhaseName {
        match self {
            Step::SessionTicket
            | Step::TsRequest
            | Step::NtlmNegotiate
            | Step::NtlmChallenge
            | Step::NtlmAuthenticate
            | Step::ServerPubKeyAuth
            | Step::AuthInfo
            | Step::TsRequestError => PhaseName::Credssp,
            Step::EarlyUserAuth => PhaseName::EarlyUserAuth,
            Step::ConnectInitial | Step::ConnectResponse => PhaseName::McsConnect,
            Step::ErectDomain
            | Step::AttachUserRequest
            | Step::AttachUserConfirm
            | Step::ChannelJoinRequest
            | Step::ChannelJoinConfirm => PhaseName::ChannelJoin,
            Step::ClientInfo => PhaseName::SecureSettings,
            Step::LicenseRequest
            | Step::LicenseClient
            | Step::PlatformChallenge
            | Step::LicenseFinal => PhaseName::Licensing,
            Step::ServerExtra | Step::ClientExtra | Step::DemandActive | Step::ConfirmActive => {
                PhaseName::Capabilities
            }
            Step::Synchronize
            | Step::Control
            | Step::PersistentKeyList
            | Step::FontList
            | Step::FontMap => PhaseName::Finalization,
            Step::Data | Step::SetErrorInfo | Step::Ultimatum | Step::Alert => PhaseName::Active,
        }
    }

    /// The PDU's name as the specification spells it.
    pub fn name(self) -> &'static str {
        match self {
            Step::SessionTicket => "TLS NewSessionTicket",
            Step::TsRequest => "TSRequest",
            Step::NtlmNegotiate => "TSRequest NTLM NEGOTIATE",
            Step::NtlmChallenge => "TSRequest NTLM CHALLENGE",
            Step::NtlmAuthenticate => "TSRequest NTLM AUTHENTICATE, pubKeyAuth",
            Step::ServerPubKeyAuth => "TSRequest pubKeyAuth",
            Step::AuthInfo => "TSRequest authInfo",
            Step::TsRequestError => "TSRequest with an errorCode",
            Step::EarlyUserAuth => "Early User Authorization Result",
            Step::ConnectInitial => "MCS Connect Initial",
            Step::ConnectResponse => "MCS Connect Response",
            Step::ErectDomain => "MCS Erect Domain Request",
            Step::AttachUserRequest => "MCS Attach User Request",
            Step::AttachUserConfirm => "MCS Attach User Confirm",
            Step::ChannelJoinRequest => "MCS Channel Join Request",
            Step::ChannelJoinConfirm => "MCS Channel Join Confirm",
            Step::ClientInfo => "Client Info",
            Step::LicenseRequest => "Server License Request",
            Step::LicenseClient => "client licensing message",
            Step::PlatformChallenge => "Server Platform Challenge",
            Step::LicenseFinal => "Licensing Error Message (STATUS_VALID_CLIENT) or a license",
            Step::ServerExtra => "server PDU before the Demand Active",
            Step::ClientExtra => "client answer before the Confirm Active",
            Step::DemandActive => "Server Demand Active (or a Server Redirection PDU)",
            Step::ConfirmActive => "Client Confirm Active",
            Step::Synchronize => "Synchronize",
            Step::Control => "Control",
            Step::PersistentKeyList => "Persistent Key List",
            Step::FontList => "Font List",
            Step::FontMap => "Font Map",
            Step::Data => "session data",
            Step::SetErrorInfo => "Set Error Info",
            Step::Ultimatum => "MCS Disconnect Provider Ultimatum",
            Step::Alert => "TLS Alert",
        }
    }

    /// Steps of the CredSSP exchange.
    pub fn is_credssp(self) -> bool {
        self.phase() == PhaseName::Credssp
    }

    /// Steps that may come or not without telling where the connection stands.
    pub fn is_extra(self) -> bool {
        matches!(
            self,
            Step::SessionTicket | Step::ServerExtra | Step::ClientExtra
        )
    }

    /// Steps that end a side's part of the connection.
    pub fn is_ending(self) -> bool {
        matches!(self, Step::SetErrorInfo | Step::Ultimatum | Step::Alert)
    }
}

/// Counters the lockstep parts of the exchange keep on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// TSRequests of the CredSSP exchange.
    Credssp = 0,
    /// Channel Join Requests and Confirms.
    Join = 1,
    /// Licensing messages.
    License = 2,
    /// Server PDUs before the Demand Active and the client's answers.
    Extra = 3,
}

pub const COUNTERS: usize = 4;

/// What the other side must have sent before this item can come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Nothing,
    /// The other side sent this step (or went past it).
    Past(Step),
    /// The other side's counter is at least this side's counter plus the number: an answer waits for its
    /// question (`Balanced(c, 1)`), a question for the answer to the previous one (`Balanced(c, 0)`).
    Balanced(Counter, u8),
    /// Both.
    PastAndBalanced(Step, Counter, u8),
}

/// One PDU of one side's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub step: Step,
    pub size: Span,
    /// A second size the PDU may have.
    pub or: Option<Span>,
    pub min: u16,
    /// `u16::MAX`: as often as it comes.
    pub max: u16,
    pub need: Need,
    pub counter: Option<Counter>,
}

impl Item {
    /// The sizes the PDU may have.
    pub fn sizes(&self) -> impl Iterator<Item = Span> {
        core::iter::once(self.size).chain(self.or)
    }
}

/// What follows the TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner {
    /// PROTOCOL_HYBRID: CredSSP, then MCS.
    Hybrid,
    /// PROTOCOL_HYBRID_EX: CredSSP, the Early User Authorization Result, then MCS.
    HybridEx,
    /// PROTOCOL_SSL: MCS right away.
    Ssl,
    /// [5.3] Standard RDP Security: the PDUs are framed in the clear and their contents encrypted from the
    /// Client Info on; what the dissector reads in the clear (licensing) it passes on as known steps.
    Standard {
        /// The licensing exchange ended before the first encrypted PDU.
        licensed: bool,
    },
}

/// The shape of the CredSSP exchange, told by the size of the client's first TSRequest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credssp {
    /// [MS-NLMP] NTLM without SPNEGO: NEGOTIATE (a small first TSRequest), AUTHENTICATE with pubKeyAuth,
    /// authInfo; the server answers the first two ([MS-CSSP] 3.1.5).
    Ntlm,
    /// SPNEGO (Kerberos, user-to-user Kerberos, NTLM inside SPNEGO): as many legs as the mechanism needs.
    Other,
}

/// The largest first TSRequest of raw NTLM: the TSRequest header, version and negoTokens around an NTLM
/// NEGOTIATE_MESSAGE ([MS-NLMP] 2.2.1.1: 40 bytes with its version, more with a domain or workstation), and
/// version 5 and later a clientNonce ([MS-CSSP] 2.2.1: FreeRDP 3 sends it from the first message).
const NTLM_NEGOTIATE_MAX: u32 = 160;
/// The smallest first TSRequest of SPNEGO: a NegTokenInit with its mechanism list and a first token
/// (a user-to-user Kerberos TGT request is among the shortest, at about 150 bytes).
const SPNEGO_FIRST_MIN: u32 = 101;

/// The length of a PDU carried in an MCS Send Data Request or Indication of `n` bytes as ironrdp encodes it:
/// FreeRDP and others encode the userData length in two bytes where one would do ([T.125] 7, PER).
pub fn send_data(n: u32) -> Span {
    Span::new(n, n.saturating_add(1))
}

/// The scripts of both sides.
#[derive(Debug, Clone)]
pub struct Script {
    pub client: Vec<Item>,
    pub server: Vec<Item>,
}

impl Script {
    pub fn side(&self, side: Side) -> &[Item] {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }
}

/// The largest PDU rdptrace expects in one piece (a TPKT frame or a fast-path PDU is at most 0xFFFF bytes;
/// a TSRequest with a certificate chain or a Kerberos ticket stays well below).
const ANY: u32 = 0xFFFF;

fn item(step: Step, size: Span, min: u16, max: u16, need: Need) -> Item {
    Item {
        step,
        size,
        or: None,
        min,
        max,
        need,
        counter: None,
    }
}

fn counted(mut i: Item, c: Counter) -> Item {
    i.counter = Some(c);
    i
}

impl Script {
    /// The exchange after the handshake for `inner` (with CredSSP of shape `credssp`); `tls13` adds the
    /// server's session tickets.
    pub fn new(inner: Inner, credssp: Credssp, tls13: bool) -> Script {
        let s = sizes();
        let exact = Span::exact;
        let sdu = send_data;
        let once = |step, size, need| item(step, size, 1, 1, need);
        let mut client = Vec::new();
        let mut server = Vec::new();
        if tls13 {
            server.push(item(
                Step::SessionTicket,
                Span::new(40, 4096),
                0,
                4,
                Need::Nothing,
            ));
        }
        if matches!(inner, Inner::Hybrid | Inner::HybridEx) {
            // [MS-CSSP] 3.1.5: the client speaks first and last; every server TSRequest answers one.
            let lockstep = Need::Balanced(Counter::Credssp, 0);
            let answer = Need::Balanced(Counter::Credssp, 1);
            let any = Span::new(16, ANY);
            type Legs<'a> = (&'a [(Step, Span)], &'a [(Step, Span, u16)]);
            let (c, sv): Legs<'_> = match credssp {
                Credssp::Ntlm => (
                    &[
                        (Step::NtlmNegotiate, Span::new(16, NTLM_NEGOTIATE_MAX)),
                        (Step::NtlmAuthenticate, any),
                        (Step::AuthInfo, any),
                    ],
                    &[
                        (Step::NtlmChallenge, Span::new(40, ANY), 1),
                        (Step::ServerPubKeyAuth, Span::new(40, ANY), 1),
                    ],
                ),
                Credssp::Other => (
                    &[(Step::TsRequest, Span::new(SPNEGO_FIRST_MIN, ANY))],
                    &[(Step::TsRequest, Span::new(40, ANY), 11)],
                ),
            };
            for (step, size) in c {
                client.push(counted(
                    item(*step, *size, 1, 1, lockstep),
                    Counter::Credssp,
                ));
            }
            if credssp == Credssp::Other {
                client.push(counted(
                    item(Step::TsRequest, any, 1, 11, lockstep),
                    Counter::Credssp,
                ));
            }
            for (step, size, max) in sv {
                server.push(counted(
                    item(*step, *size, 1, *max, answer),
                    Counter::Credssp,
                ));
            }
        }
        if inner == Inner::HybridEx {
            server.push(once(
                Step::EarlyUserAuth,
                exact(s.early_user_auth),
                Need::Balanced(Counter::Credssp, 1),
            ));
        }
        let connect_need = if inner == Inner::HybridEx {
            Need::Past(Step::EarlyUserAuth)
        } else {
            Need::Nothing
        };
        client.push(once(
            Step::ConnectInitial,
            Span::new(200, ANY),
            connect_need,
        ));
        server.push(once(
            Step::ConnectResponse,
            Span::new(60, ANY),
            Need::Past(Step::ConnectInitial),
        ));
        client.push(once(
            Step::ErectDomain,
            exact(s.erect_domain),
            Need::Past(Step::ConnectResponse),
        ));
        client.push(once(
            Step::AttachUserRequest,
            exact(s.attach_user_request),
            Need::Nothing,
        ));
        server.push(once(
            Step::AttachUserConfirm,
            exact(s.attach_user_confirm),
            Need::Past(Step::AttachUserRequest),
        ));
        // [2.2.1.8] one join per channel, the user and I/O channels included; none with
        // SUPPORT_SKIP_CHANNELJOIN ([2.2.1.3.2] earlyCapabilityFlags).
        client.push(counted(
            item(
                Step::ChannelJoinRequest,
                exact(s.channel_join_request),
                0,
                40,
                Need::Past(Step::AttachUserConfirm),
            ),
            Counter::Join,
        ));
        server.push(counted(
            item(
                Step::ChannelJoinConfirm,
                exact(s.channel_join_confirm),
                0,
                40,
                Need::Balanced(Counter::Join, 1),
            ),
            Counter::Join,
        ));
        client.push(once(
            Step::ClientInfo,
            Span::new(60, ANY),
            Need::PastAndBalanced(Step::AttachUserConfirm, Counter::Join, 0),
        ));
        // [MS-RDPELE] 1.3.3: a License Request and the exchange it starts, or a Licensing Error Message
        // (STATUS_VALID_CLIENT) at once.
        server.push(counted(
            item(
                Step::LicenseRequest,
                Span::new(60, ANY),
                0,
                1,
                Need::Past(Step::ClientInfo),
            ),
            Counter::License,
        ));
        client.push(counted(
            item(
                Step::LicenseClient,
                Span::new(40, ANY),
                0,
                2,
                Need::Balanced(Counter::License, 1),
            ),
            Counter::License,
        ));
        server.push(counted(
            item(
                Step::PlatformChallenge,
                Span::new(40, ANY),
                0,
                1,
                Need::Balanced(Counter::License, 0),
            ),
            Counter::License,
        ));
        // A Licensing Error Message with an empty blob, or a New or Upgrade License with its encrypted
        // license ([MS-RDPELE] 2.2.2.6.1: a blob of at least a certificate's size).
        server.push(Item {
            or: Some(Span::new(100, ANY)),
            ..once(
                Step::LicenseFinal,
                sdu(s.license_error),
                Need::PastAndBalanced(Step::ClientInfo, Counter::License, 0),
            )
        });
        server.push(counted(
            item(Step::ServerExtra, Span::new(16, 8192), 0, 16, Need::Nothing),
            Counter::Extra,
        ));
        client.push(counted(
            item(
                Step::ClientExtra,
                Span::new(16, 8192),
                0,
                16,
                Need::Balanced(Counter::Extra, 1),
            ),
            Counter::Extra,
        ));
        server.push(once(
            Step::DemandActive,
            Span::new(100, ANY),
            Need::Past(Step::ClientInfo),
        ));
        // ironrdp's acceptor follows the Demand Active with a Monitor Layout PDU.
        server.push(counted(
            item(Step::ServerExtra, Span::new(16, 8192), 0, 4, Need::Nothing),
            Counter::Extra,
        ));
        client.push(once(
            Step::ConfirmActive,
            Span::new(100, ANY),
            Need::Past(Step::DemandActive),
        ));
        client.push(counted(
            item(
                Step::ClientExtra,
                Span::new(16, 8192),
                0,
                4,
                Need::Balanced(Counter::Extra, 1),
            ),
            Counter::Extra,
        ));
        // [1.3.1.1] connection finalization: the client's four PDUs, the server's answers.
        client.push(once(Step::Synchronize, sdu(s.synchronize), Need::Nothing));
        client.push(item(Step::Control, sdu(s.control), 2, 2, Need::Nothing));
        // [2.2.1.17.1] 24 bytes of counts and flags after the Share Data Header, 8 per key.
        client.push(item(
            Step::PersistentKeyList,
            Span::new(s.synchronize + 20, ANY),
            0,
            8,
            Need::Nothing,
        ));
        client.push(once(Step::FontList, sdu(s.font), Need::Nothing));
        server.push(once(
            Step::Synchronize,
            sdu(s.synchronize),
            Need::Past(Step::ConfirmActive),
        ));
        server.push(item(Step::Control, sdu(s.control), 2, 2, Need::Nothing));
        server.push(once(Step::FontMap, sdu(s.font), Need::Past(Step::FontList)));
        client.push(item(
            Step::Data,
            Span::new(1, ANY),
            0,
            u16::MAX,
            Need::Nothing,
        ));
        server.push(item(
            Step::Data,
            Span::new(1, ANY),
            0,
            u16::MAX,
            Need::Nothing,
        ));
        if let Inner::Standard { licensed } = inner {
            // Everything up to the Client Info went by in the clear (and licensing too, when `licensed`).
            let (from_server, from_client) = if licensed {
                (Step::ServerExtra, Step::ClientExtra)
            } else {
                (Step::LicenseRequest, Step::LicenseClient)
            };
            let cut = |v: &mut Vec<Item>, at: Step| {
                if let Some(i) = v.iter().position(|x| x.step == at) {
                    v.drain(..i);
                }
            };
            cut(&mut server, from_server);
            cut(&mut client, from_client);
        }
        Script { client, server }
    }
}
