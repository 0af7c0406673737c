//! The decoded content of the PDUs that rdptrace records, typed so that diagnosis can read it.
//!
//! Only what explains a connection is kept: codes, versions, names, channel ids. Secrets never enter these
//! types (a Client Info PDU keeps the user and domain and whether a password was present, not the password).

use serde::Serialize;

/// The decoded content of one PDU.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum PduInfo {
    /// [2.2.1.1] Client X.224 Connection Request PDU.
    X224ConnectionRequest {
        cookie: Option<String>,
        routing_token: Option<String>,
        /// `None` when the request has no RDP_NEG_REQ (a legacy client, or `--security rdp` on some clients).
        requested_protocols: Option<u32>,
        flags: u8,
    },
    /// [2.2.1.2] Server X.224 Connection Confirm PDU.
    X224ConnectionConfirm { negotiation: Negotiation },
    /// [X.224] 13.5 Disconnect Request TPDU.
    X224DisconnectRequest,

    /// A TLS ClientHello (in clear).
    TlsClientHello {
        version: u16,
        supported_versions: Vec<u16>,
        cipher_suites: Vec<u16>,
        server_name: Option<String>,
    },
    /// A TLS ServerHello (in clear).
    TlsServerHello { version: u16, cipher_suite: u16 },
    /// A TLS Certificate message (in clear for TLS 1.2 and older; from the client's own TLS stack for 1.3).
    TlsCertificate { chain: Vec<CertInfo> },
    /// Another TLS handshake message ([RFC 8446] 4): ServerKeyExchange, ServerHelloDone, ...
    TlsHandshake { msg_type: u8 },
    /// A TLS alert ([RFC 8446] 6). Level and description are unknown when the alert was encrypted and
    /// nobody could decrypt it.
    TlsAlert {
        level: Option<u8>,
        description: Option<u8>,
        encrypted: bool,
    },
    /// TLS records after the handshake that nobody could decrypt.
    TlsEncrypted,

    /// [MS-CSSP] 2.2.1 TSRequest.
    TsRequest {
        version: u32,
        token: Option<AuthToken>,
        auth_info: bool,
        pub_key_auth: bool,
        client_nonce: bool,
        error_code: Option<u32>,
    },
    /// [2.2.10.2] Early User Authorization Result PDU.
    EarlyUserAuthResult { result: u32 },

    /// [2.2.1.3] Client MCS Connect Initial PDU with GCC Conference Create Request.
    McsConnectInitial {
        client_version: Option<u32>,
        desktop_width: Option<u16>,
        desktop_height: Option<u16>,
        keyboard_layout: Option<u32>,
        client_build: Option<u32>,
        client_name: Option<String>,
        requested_protocols: Option<u32>,
        encryption_methods: Option<u32>,
        channels: Vec<String>,
    },
    /// [2.2.1.4] Server MCS Connect Response PDU with GCC Conference Create Response.
    McsConnectResponse {
        result: u8,
        server_version: Option<u32>,
        client_requested_protocols: Option<u32>,
        encryption_method: Option<u32>,
        encryption_level: Option<u32>,
        /// `proprietary` or `x509` under Standard RDP Security.
        server_certificate: Option<String>,
        io_channel: Option<u16>,
        channel_ids: Vec<u16>,
        message_channel: Option<u16>,
    },
    /// [2.2.1.5] Client MCS Erect Domain Request PDU.
    ErectDomainRequest,
    /// [2.2.1.6] Client MCS Attach User Request PDU.
    AttachUserRequest,
    /// [2.2.1.7] Server MCS Attach User Confirm PDU.
    AttachUserConfirm { result: u8, user_id: Option<u16> },
    /// [2.2.1.8] Client MCS Channel Join Request PDU.
    ChannelJoinRequest { user_id: u16, channel_id: u16 },
    /// [2.2.1.9] Server MCS Channel Join Confirm PDU.
    ChannelJoinConfirm { result: u8, channel_id: u16 },

    /// [2.2.1.10] Client Security Exchange PDU.
    SecurityExchange { encrypted_random_len: u32 },
    /// [2.2.1.11] Client Info PDU. `None` fields were encrypted.
    ClientInfo {
        encrypted: bool,
        user: Option<String>,
        domain: Option<String>,
        flags: Option<u32>,
        password_present: Option<bool>,
    },
    /// [2.2.14] Auto-Detect Request / Response PDU.
    AutoDetect { request_type: u16 },

    /// [MS-RDPELE] licensing PDU.
    License { message: LicenseMessage },

    /// [2.2.1.13.1] Server Demand Active PDU.
    DemandActive {
        share_id: u32,
        capability_sets: Vec<u16>,
    },
    /// [2.2.1.13.2] Client Confirm Active PDU.
    ConfirmActive {
        share_id: u32,
        capability_sets: Vec<u16>,
    },
    /// [2.2.1.14] / [2.2.1.19] Synchronize PDU.
    Synchronize,
    /// [2.2.1.15] / [2.2.1.16] / [2.2.1.20] / [2.2.1.21] Control PDU.
    Control { action: u16 },
    /// [2.2.1.18] Client Font List PDU.
    FontList,
    /// [2.2.1.22] Server Font Map PDU.
    FontMap,
    /// [2.2.1.17] Client Persistent Key List PDU.
    PersistentKeyList,
    /// [2.2.12.1] Monitor Layout PDU.
    MonitorLayout,

    /// [2.2.5.1.1] Set Error Info PDU.
    SetErrorInfo { code: u32 },
    /// [2.2.3.1] Server Deactivate All PDU.
    DeactivateAll,
    /// [2.2.10.1] Save Session Info PDU.
    SaveSessionInfo { info_type: u32 },
    /// [2.2.2.3] MCS Disconnect Provider Ultimatum PDU ([T.125] 11.15): the reason, 0 to 4.
    DisconnectProviderUltimatum { reason: u8 },
    /// [2.2.13.1] Server Redirection PDU. The password (cookie) it may carry is never kept, only whether it
    /// was there.
    ServerRedirection {
        session_id: u32,
        /// TargetNetAddress.
        target: Option<String>,
        /// RedirFlags.
        #[serde(skip_serializing_if = "is_zero")]
        flags: u32,
        /// LoadBalanceInfo, the routing token of the next connection (printable, or hex).
        #[serde(skip_serializing_if = "Option::is_none")]
        load_balance_info: Option<String>,
        /// TargetFQDN.
        #[serde(skip_serializing_if = "Option::is_none")]
        fqdn: Option<String>,
        /// UserName, when the PDU carries one.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// A Password field (a cookie for the next connection) was present.
        #[serde(skip_serializing_if = "core::ops::Not::not")]
        password_cookie: bool,
    },
    /// [RFC 9112] 3 An HTTP request to an RD Gateway ([MS-TSGU] 3.3.5.1): `RDG_OUT_DATA`, `RDG_IN_DATA`. The
    /// credentials of its Authorization header are never kept, only their scheme.
    HttpRequest {
        method: String,
        auth_scheme: Option<String>,
        /// [RFC 6455] 4.1 it asks for a WebSocket upgrade.
        upgrade: bool,
        /// [RFC 4559] 4 a Kerberos token in its Negotiate header (the AP-REQ), as far as it reads in clear.
        #[serde(skip_serializing_if = "Option::is_none")]
        kerberos: Option<AuthToken>,
    },
    /// [RFC 9112] 4 An HTTP response of an RD Gateway.
    HttpResponse {
        status: u16,
        /// The schemes of its WWW-Authenticate headers.
        auth_offered: Vec<String>,
        /// [RFC 4559] 5 a Kerberos token in its Negotiate header (the AP-REP, or the KRB-ERROR of a refusal).
        #[serde(skip_serializing_if = "Option::is_none")]
        kerberos: Option<AuthToken>,
    },
    /// [MS-TSGU] 2.2.10 A packet of the HTTP transport: its type ([MS-TSGU] 2.2.5.3.3) and the HRESULT it
    /// carries, for the packets that carry one.
    GatewayPacket { packet_type: u16, code: Option<u32> },
    /// [MS-TSGU] 3.2 A PDU of RPC over HTTP: its PTYPE ([C706] 12.6.4; 20 for RTS, [MS-RPCH] 2.2.3.6.1),
    /// the TsProxy opnum of a request or of the call an answer is to ([MS-TSGU] 3.2.4), and the HRESULT of
    /// an answer (a fault's status, a response's return value).
    RpcPdu {
        ptype: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        opnum: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<u32>,
    },
    /// [2.2.15.1] Initiate Multitransport Request PDU.
    MultitransportRequest { protocol: u32 },
    /// [2.2.8.1.1.1.1] Share Data PDU of another type.
    ShareData { pdu_type2: u8 },
    /// [2.2.8.1.1.1.1] Share Control PDU of another type.
    ShareControl { pdu_type: u16 },
    /// [2.2.9.1.2] Fast-path output, or other traffic of the active session.
    FastPath { encrypted: bool },
    /// Virtual channel data.
    ChannelData { channel_id: u16 },
    /// A PDU encrypted with Standard RDP Security that rdptrace cannot read.
    Encrypted,
    /// A PDU nobody decrypted, named from the size, direction and order of the encrypted records
    /// ([`crate::infer`]).
    Inferred {
        step: crate::infer::Step,
        /// The record's number among the encrypted records after the TLS handshake (from 1).
        record: u32,
        /// The record's plaintext length.
        plaintext: crate::infer::record::Span,
        /// The PDU goes on in the next record.
        split: bool,
    },
    /// Bytes that did not decode as what was expected here.
    Undecoded {
        detail: String,
        offset: Option<usize>,
    },
}

/// The answer in an X.224 Connection Confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Negotiation {
    /// [2.2.1.2.1] RDP_NEG_RSP.
    Response { selected_protocol: u32, flags: u8 },
    /// [2.2.1.2.2] RDP_NEG_FAILURE.
    Failure { code: u32 },
    /// No negotiation data: the server speaks Standard RDP Security only (or is very old).
    None,
}

/// The security token carried in a TSRequest negoTokens field.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AuthToken {
    /// [MS-NLMP] 2.2.1.1 NEGOTIATE_MESSAGE.
    NtlmNegotiate,
    /// [MS-NLMP] 2.2.1.2 CHALLENGE_MESSAGE.
    NtlmChallenge(NtlmChallengeInfo),
    /// [MS-NLMP] 2.2.1.3 AUTHENTICATE_MESSAGE (user and domain only).
    NtlmAuthenticate {
        user: Option<String>,
        domain: Option<String>,
        workstation: Option<String>,
    },
    /// SPNEGO wrapping (Negotiate), with the mechanism if it could be told.
    Spnego {
        mechanism: Option<String>,
        /// [RFC 4178] 4.2 the SPNEGO token itself, when it decodes.
        #[serde(skip_serializing_if = "Option::is_none")]
        spnego: Option<SpnegoInfo>,
    },
    /// A Kerberos token (AP-REQ, AP-REP, ...).
    Kerberos {
        message: String,
        /// [RFC 4178] 4.2 the SPNEGO token around it, when there is one.
        #[serde(skip_serializing_if = "Option::is_none")]
        spnego: Option<SpnegoInfo>,
        /// The Kerberos message, decoded as far as it goes in clear.
        #[serde(skip_serializing_if = "Option::is_none")]
        krb: Option<KrbMessage>,
    },
    Unknown {
        len: usize,
    },
}

/// [RFC 4178] 4.2 A SPNEGO token: the offer (negTokenInit) or an answer (negTokenResp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpnegoInfo {
    /// `negTokenInit` or `negTokenResp`.
    pub token: String,
    /// [RFC 4178] 4.2.1 mechTypes, most preferred first, by name (`Kerberos`, `MS Kerberos`, `NTLM`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mech_types: Vec<String>,
    /// [RFC 4178] 4.2.2 negState: `accept-completed`, `accept-incomplete`, `reject`, `request-mic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neg_state: Option<String>,
    /// [RFC 4178] 4.2.2 supportedMech: the mechanism the acceptor chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supported_mech: Option<String>,
}

/// A principal: `TERMSRV/rdp01.corp.example@CORP.EXAMPLE` ([RFC 4120] 6.2, name components joined by `/`).
pub type Principal = String;

/// [RFC 4120] 5 A Kerberos message, as far as it can be read in clear: names, realms, encryption types, key
/// versions, codes. Never a key, a ticket's or an authenticator's ciphertext, or a timestamp that proves
/// the password.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "msg")]
pub enum KrbMessage {
    /// [RFC 4120] 5.4.1 AS-REQ: the client asks for a ticket-granting ticket.
    AsReq(KdcRequest),
    /// [RFC 4120] 5.4.2 AS-REP.
    AsRep(KdcReply),
    /// [RFC 4120] 5.4.1 TGS-REQ: the client asks for a service ticket.
    TgsReq(KdcRequest),
    /// [RFC 4120] 5.4.2 TGS-REP.
    TgsRep(KdcReply),
    /// [RFC 4120] 5.5.1 AP-REQ: the service ticket and an authenticator, to the server.
    ApReq {
        ticket: TicketInfo,
        /// ap-options MUTUAL-REQUIRED: the client wants an AP-REP.
        mutual_required: bool,
    },
    /// [RFC 4120] 5.5.2 AP-REP: the server proves it could decrypt the ticket.
    ApRep { etype: i32 },
    /// [RFC 4120] 5.9.1 KRB-ERROR.
    Error(KrbErrorInfo),
    /// User-to-user: the client asks the server for its TGT (draft-swift-win2k-krb-user2user, KERB-TGT-REQUEST).
    TgtReq { server: Option<Principal> },
    /// User-to-user: the server's TGT (draft-swift-win2k-krb-user2user, KERB-TGT-REPLY).
    TgtRep { ticket: TicketInfo },
}

/// [RFC 4120] 5.4.1 KDC-REQ, in clear.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KdcRequest {
    /// cname@realm (AS-REQ only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<Principal>,
    /// sname@realm: `krbtgt/REALM@REALM` for a TGT, `TERMSRV/host@REALM` for RDP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<Principal>,
    /// [RFC 3961] 8 the encryption types the client accepts, in its order of preference.
    pub etypes: Vec<i32>,
    /// [RFC 4120] 7.5.2 the padata-types it sends (2: PA-ENC-TIMESTAMP, pre-authentication).
    pub pa_types: Vec<i32>,
}

/// [RFC 4120] 5.4.2 KDC-REP, in clear.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KdcReply {
    pub client: Principal,
    pub ticket: TicketInfo,
    /// The encryption type of the part only the client can decrypt.
    pub etype: i32,
}

/// [RFC 4120] 5.3 A ticket, in clear: for whom and under which key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TicketInfo {
    /// sname@realm.
    pub server: Principal,
    /// [RFC 3961] 8 the encryption type of the service key the ticket is encrypted with.
    pub etype: i32,
    /// The version of that key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kvno: Option<u32>,
}

/// [RFC 4120] 5.9.1 KRB-ERROR.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KrbErrorInfo {
    /// [RFC 4120] 7.5.9 error-code.
    pub code: u32,
    /// The service the error is about (sname@realm).
    pub server: Principal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<Principal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e_text: Option<String>,
    /// stime: the clock of whoever sent the error, RFC 3339.
    pub stime: String,
    /// How far that clock is ahead of the one that received the error (the probe's, or the capture's
    /// timestamps), in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_offset_s: Option<f64>,
    /// [MS-KILE] 2.2.1 the NTSTATUS of a KERB-EXT-ERROR in e-data, when the KDC gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ntstatus: Option<u32>,
    /// [RFC 4120] 5.2.7.5 the encryption types the KDC offers in PA-ETYPE-INFO2 (KDC_ERR_PREAUTH_REQUIRED).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub etypes: Vec<i32>,
}

#[cfg(test)]
impl KrbErrorInfo {
    /// A KRB-ERROR with `code` about `server`, sent at 2025-05-20T12:00:00Z, and nothing more: for tests.
    pub fn about(code: u32, server: &str) -> Self {
        KrbErrorInfo {
            code,
            server: server.to_owned(),
            client: None,
            e_text: None,
            stime: "2025-05-20T12:00:00Z".to_owned(),
            clock_offset_s: None,
            ntstatus: None,
            etypes: Vec::new(),
        }
    }
}

/// What an NTLM CHALLENGE tells about the server ([MS-NLMP] 2.2.2.1 AV_PAIR, 2.2.2.10 VERSION).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NtlmChallengeInfo {
    pub target_name: Option<String>,
    pub netbios_computer: Option<String>,
    pub netbios_domain: Option<String>,
    pub dns_computer: Option<String>,
    pub dns_domain: Option<String>,
    pub dns_tree: Option<String>,
    /// `major.minor.build`.
    pub os_version: Option<String>,
}

/// [MS-RDPELE] 2.2.2 licensing messages (bMsgType).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LicenseMessage {
    /// [MS-RDPELE] 2.2.2.1 Server License Request.
    LicenseRequest,
    /// [MS-RDPELE] 2.2.2.4 Server Platform Challenge.
    PlatformChallenge,
    /// [MS-RDPELE] 2.2.2.7 Server New License.
    NewLicense,
    /// [MS-RDPELE] 2.2.2.6 Server Upgrade License.
    UpgradeLicense,
    /// [MS-RDPELE] 2.2.2.3 Client License Information.
    LicenseInfo,
    /// [MS-RDPELE] 2.2.2.2 Client New License Request.
    NewLicenseRequest,
    /// [MS-RDPELE] 2.2.2.5 Client Platform Challenge Response.
    PlatformChallengeResponse,
    /// [2.2.1.12.1.3] Licensing Error Message: dwErrorCode and dwStateTransition.
    ErrorAlert {
        code: u32,
        transition: u32,
    },
    Other {
        msg_type: u8,
    },
}

/// What rdptrace makes of one certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    /// `RSA`, `EC`, `Ed25519`, ...
    pub key_type: String,
    pub key_bits: Option<u32>,
    pub self_signed: bool,
    pub serial: String,
    /// SHA-256 of the DER, hex.
    pub sha256: String,
}

impl PduInfo {
    /// Whether diagnosis may rest on this PDU: it is kept even where a phase's PDU list is full.
    pub fn is_decisive(&self) -> bool {
        matches!(
            self,
            PduInfo::X224ConnectionConfirm { .. }
                | PduInfo::TlsAlert { .. }
                | PduInfo::TsRequest {
                    error_code: Some(_),
                    ..
                }
                | PduInfo::EarlyUserAuthResult { .. }
                | PduInfo::License {
                    message: LicenseMessage::ErrorAlert { .. }
                }
                | PduInfo::SetErrorInfo { .. }
                | PduInfo::DeactivateAll
                | PduInfo::DemandActive { .. }
                | PduInfo::DisconnectProviderUltimatum { .. }
                | PduInfo::ServerRedirection { .. }
                | PduInfo::HttpResponse { .. }
                | PduInfo::GatewayPacket { code: Some(_), .. }
                | PduInfo::RpcPdu { code: Some(_), .. }
                | PduInfo::Undecoded { .. }
                | PduInfo::Inferred { .. }
        )
    }
}

/// For `skip_serializing_if`.
fn is_zero(v: &u32) -> bool {
    *v == 0
}
