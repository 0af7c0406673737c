//! The keys of the facts a phase records: one closed list, so that the dissector, the producers, the
//! diagnosis and the renderers cannot disagree on a name. The JSON document (`rdptrace/1`) uses
//! [`Fact::as_str`] as the member name.

macro_rules! facts {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal $(, $shown:ident)?;)*) => {
        /// The key of one fact in a [`super::Phase`]'s fact list.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Fact {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Fact {
            /// Every fact, in declaration order.
            pub const ALL: &'static [Fact] = &[$(Fact::$variant,)*];

            /// The fact's name in JSON documents, expectations (`tls.tls_version=...`) and timelines.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Fact::$variant => $name,)*
                }
            }

            /// Whether the timeline shows this fact without `-v`.
            pub const fn shown(self) -> bool {
                match self {
                    $(Fact::$variant => facts!(@shown $($shown)?),)*
                }
            }
        }
    };
    (@shown shown) => { true };
    (@shown) => { false };
}

facts! {
    // gateway_connect, gateway_auth, gateway_tunnel
    /// The RD Gateway the connection went through, as the user named it.
    Gateway = "gateway", shown;
    /// The schemes of the gateway's WWW-Authenticate headers.
    GatewayAuthOffered = "gateway_auth_offered", shown;
    /// The scheme the client authenticated with.
    GatewayAuthScheme = "gateway_auth_scheme", shown;
    /// WebSocket, or the HTTP transport (RDG_OUT_DATA and RDG_IN_DATA).
    GatewayTransport = "gateway_transport", shown;
    /// The status of the gateway's last HTTP response.
    HttpStatus = "http_status", shown;
    GatewayVersion = "gateway_version";
    GatewayCapabilities = "gateway_capabilities";
    GatewayTunnelId = "gateway_tunnel_id";
    GatewayIdleTimeout = "gateway_idle_timeout";
    GatewayRedirectionFlags = "gateway_redirection_flags";
    GatewayChannelId = "gateway_channel_id";
    /// The resource and port the client asked the gateway to connect to.
    GatewayTarget = "gateway_target", shown;
    /// The HRESULT of the gateway's answer that ended the tunnel setup.
    GatewayCode = "gateway_code", shown;
    /// A consent or service message of the gateway.
    GatewayMessage = "gateway_message", shown;
    // x224
    Cookie = "cookie", shown;
    RoutingToken = "routing_token";
    CorrelationId = "correlation_id";
    RequestFlags = "request_flags";
    ResponseFlags = "response_flags";
    RequestedProtocols = "requested_protocols", shown;
    SelectedProtocol = "selected_protocol", shown;
    NegFailure = "neg_failure", shown;
    // tls
    ClientHelloVersion = "client_hello_version";
    ClientSupportedVersions = "client_supported_versions";
    TlsVersion = "tls_version", shown;
    CipherSuite = "cipher_suite", shown;
    TlsAlert = "tls_alert", shown;
    CertSubject = "cert_subject", shown;
    CertIssuer = "cert_issuer", shown;
    CertNotAfter = "cert_not_after", shown;
    CertKey = "cert_key", shown;
    CertSans = "cert_sans", shown;
    CertSelfSigned = "cert_self_signed";
    CertProblems = "cert_problems", shown;
    /// Replay: whether and how the TLS records were decrypted.
    Decrypted = "decrypted", shown;
    DecryptFailures = "decrypt_failures";
    NotDecrypted = "not_decrypted", shown;
    // credssp
    ErrorCode = "error_code", shown;
    ClientTsRequestVersion = "client_ts_request_version";
    ServerTsRequestVersion = "server_ts_request_version";
    AuthPackage = "auth_package", shown;
    NtlmTargetName = "ntlm_target_name";
    NtlmNetbiosComputer = "ntlm_netbios_computer";
    NtlmNetbiosDomain = "ntlm_netbios_domain", shown;
    NtlmDnsComputer = "ntlm_dns_computer", shown;
    NtlmDnsDomain = "ntlm_dns_domain";
    NtlmDnsTree = "ntlm_dns_tree";
    NtlmOsVersion = "ntlm_os_version", shown;
    /// [RFC 4178] the mechanisms the client offered in SPNEGO, and the one the server chose.
    SpnegoMechs = "spnego_mechs", shown;
    SpnegoSelected = "spnego_selected", shown;
    /// The client's requested packages: `negotiate`, `kerberos` (no fallback) or `ntlm`.
    AuthRequested = "auth_requested", shown;
    /// The service principal of the Kerberos exchange: `TERMSRV/host@REALM`.
    Spn = "spn", shown;
    /// The realm of the client's Kerberos principal.
    Realm = "realm";
    /// The KDC used, and how it was found.
    Kdc = "kdc", shown;
    KdcSource = "kdc_source", shown;
    /// [RFC 4120] 7.5.9 the last Kerberos error, by number and name.
    KerberosError = "kerberos_error", shown;
    /// Negotiate tried Kerberos and fell back to NTLM: why.
    AuthFallback = "auth_fallback", shown;
    /// [MS-CSSP] 2.2.1.2 the credential type of the client's authInfo, when it could be decrypted.
    CredentialType = "credential_type", shown;
    // early_user_auth
    AuthorizationResult = "authorization_result", shown;
    // mcs_connect
    ClientName = "client_name", shown;
    ClientBuild = "client_build", shown;
    ClientRdpVersion = "client_rdp_version";
    Desktop = "desktop";
    KeyboardLayout = "keyboard_layout";
    ServerSelectedProtocol = "server_selected_protocol";
    ClientEncryptionMethods = "client_encryption_methods";
    ClientChannels = "client_channels";
    /// [2.2.1.3.5] Client Cluster Data: the session a redirected client asks for.
    RedirectedSessionId = "redirected_session_id", shown;
    McsResult = "mcs_result";
    ServerRdpVersion = "server_rdp_version", shown;
    EchoedProtocols = "echoed_protocols";
    EncryptionMethod = "encryption_method", shown;
    EncryptionLevel = "encryption_level", shown;
    ServerCertificate = "server_certificate";
    ServerCertificateSignature = "server_certificate_signature";
    ServerKey = "server_key";
    IoChannel = "io_channel";
    MessageChannel = "message_channel";
    ChannelIds = "channel_ids";
    // channel_join
    AttachUserResult = "attach_user_result";
    UserChannel = "user_channel";
    ChannelJoinResult = "channel_join_result";
    JoinedChannels = "joined_channels", shown;
    // secure_settings
    SecurityExchange = "security_exchange";
    Encryption = "encryption", shown;
    ClientInfo = "client_info";
    ClientInfoUser = "client_info_user", shown;
    ClientInfoPassword = "client_info_password", shown;
    Autologon = "autologon";
    /// Standard RDP Security: the kind of MAC each side uses.
    ClientMac = "client_mac";
    ServerMac = "server_mac";
    // licensing
    LicenseResult = "license_result", shown;
    LicenseExchange = "license_exchange", shown;
    // active and endings
    ServerCapabilitySets = "server_capability_sets";
    ClientCapabilitySets = "client_capability_sets";
    ErrorInfo = "error_info", shown;
    DisconnectReason = "disconnect_reason", shown;
    ClientDisconnectReason = "client_disconnect_reason";
    DeactivateAll = "deactivate_all";
    Finalization = "finalization";
    SaveSessionInfo = "save_session_info";
    RedirectedTo = "redirected_to", shown;
    /// [2.2.13.1] The LoadBalanceInfo of a Server Redirection PDU: the routing token of the next connection.
    RedirectLoadBalanceInfo = "redirect_load_balance_info", shown;
    /// The connection that redirected the client here (the hop before, or a session of the same capture).
    RedirectedFrom = "redirected_from", shown;
    /// The connection the client made where it was redirected (a session of the same capture).
    FollowedBy = "followed_by", shown;
    /// The phase's PDUs were named from the sizes of encrypted records ([`crate::infer`]).
    Inferred = "inferred", shown;
    /// Standard RDP Security: the PDUs were read encrypted.
    Encrypted = "encrypted", shown;
    // the probe
    Fallback = "fallback", shown;
    /// What a .rdp file asks for that the probe does otherwise.
    RdpFileNote = "rdp_file_note";
    // the replay's TCP view
    Handshake = "handshake", shown;
    SynSent = "syn_sent", shown;
    SynRetransmissions = "syn_retransmissions";
    RttMs = "rtt_ms", shown;
    Tunnel = "tunnel", shown;
    TunnelBytes = "tunnel_bytes";
    ClosedBy = "closed_by", shown;
    ThenClosedBy = "then_closed_by";
    CloseAfter = "close_after", shown;
    IdleBeforeCloseMs = "idle_before_close_ms", shown;
    IdleAtCaptureEndMs = "idle_at_capture_end_ms", shown;
    WaitedMs = "waited_ms", shown;
}

impl Fact {
    /// The fact of this name, for expectations that name one (`tls.tls_version=TLS 1.3`).
    pub fn from_name(name: &str) -> Option<Fact> {
        Fact::ALL.iter().copied().find(|f| f.as_str() == name)
    }
}

impl core::fmt::Display for Fact {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Fact;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for f in Fact::ALL {
            assert!(seen.insert(f.as_str()), "{} twice", f.as_str());
            assert_eq!(Fact::from_name(f.as_str()), Some(*f));
        }
        assert_eq!(Fact::from_name("no_such_fact"), None);
    }
}
