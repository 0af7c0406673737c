//! The Remote Desktop ActiveX control's disconnect reasons, the numbers mstsc shows as "Error code"
//! (discReason of IMsTscAxEvents::OnDisconnected) and "Extended error code" (ExtendedDisconnectReasonCode).
//!
//! Each row cites the Microsoft documentation page that lists it. One code has no published name; its
//! row says where it was reported.

use super::CodeEntry;

// The values rdptrace names in its own code. The SSL_ERR_ ones carry their published names; the others are
// named after what they mean, their published names being camelCase.

/// discReason disconnectReasonByServer.
pub const DISC_BY_SERVER: u32 = 0x3;
/// discReason disconnectReasonDNSLookupFailed.
pub const DISC_DNS_LOOKUP_FAILED: u32 = 0x104;
/// discReason disconnectReasonSocketConnectFailed.
pub const DISC_SOCKET_CONNECT_FAILED: u32 = 0x204;
pub const SSL_ERR_LOGON_FAILURE: u32 = 0x807;
/// discReason disconnectReasonLicensingFailed.
pub const DISC_LICENSING_FAILED: u32 = 0x808;
/// discReason disconnectReasonAtClientWinsockFDCLOSE: the socket closed.
pub const DISC_SOCKET_CLOSED: u32 = 0x904;
pub const SSL_ERR_NO_SUCH_USER: u32 = 0xA07;
pub const SSL_ERR_ACCOUNT_DISABLED: u32 = 0xB07;
/// discReason 0xB09 (2825), no published name: network level authentication required by the server.
pub const DISC_HYBRID_REQUIRED_BY_SERVER: u32 = 0xB09;
pub const SSL_ERR_ACCOUNT_RESTRICTION: u32 = 0xC07;
pub const SSL_ERR_ACCOUNT_LOCKED_OUT: u32 = 0xD07;
pub const SSL_ERR_ACCOUNT_EXPIRED: u32 = 0xE07;
pub const SSL_ERR_PASSWORD_EXPIRED: u32 = 0xF07;
pub const SSL_ERR_PASSWORD_MUST_CHANGE: u32 = 0x1207;
pub const SSL_ERR_NO_AUTHENTICATING_AUTHORITY: u32 = 0x1807;
pub const SSL_ERR_SMARTCARD_WRONG_PIN: u32 = 0x1C07;
pub const SSL_ERR_SMARTCARD_CARD_BLOCKED: u32 = 0x2207;

/// ExtendedDisconnectReasonCode exDiscReasonNoInfo.
pub const EXT_NO_INFO: u32 = 0x0;
/// ExtendedDisconnectReasonCode exDiscReasonServerDeniedConnection.
pub const EXT_SERVER_DENIED_CONNECTION: u32 = 0x7;

/// discReason values.
pub static ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: 0x0,
        name: "disconnectReasonNoInfo",
        meaning: "no information",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x1,
        name: "disconnectReasonLocalNotError",
        meaning: "local disconnection, not an error",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x2,
        name: "disconnectReasonRemoteByUser",
        meaning: "remote disconnection by the user, not an error",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: DISC_BY_SERVER,
        name: "disconnectReasonByServer",
        meaning: "remote disconnection by the server, not an error",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: DISC_DNS_LOOKUP_FAILED,
        name: "disconnectReasonDNSLookupFailed",
        meaning: "DNS name lookup failure",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x106,
        name: "disconnectReasonOutOfMemory",
        meaning: "out of memory",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x108,
        name: "disconnectReasonConnectionTimedOut",
        meaning: "connection timed out",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: DISC_SOCKET_CONNECT_FAILED,
        name: "disconnectReasonSocketConnectFailed",
        meaning: "socket connect failed",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x206,
        name: "disconnectReasonOutOfMemory2",
        meaning: "out of memory",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x208,
        name: "disconnectReasonHostNotFound",
        meaning: "host not found",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x304,
        name: "disconnectReasonWinsockSendFailed",
        meaning: "socket send failed",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x306,
        name: "disconnectReasonOutOfMemory3",
        meaning: "out of memory",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x308,
        name: "disconnectReasonInvalidIPAddr",
        meaning: "invalid IP address",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x404,
        name: "disconnectReasonSocketRecvFailed",
        meaning: "socket receive failed",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x406,
        name: "disconnectReasonInvalidSecurityData",
        meaning: "invalid security data",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x408,
        name: "disconnectReasonInternalError",
        meaning: "internal error",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x506,
        name: "disconnectReasonInvalidEncryption",
        meaning: "invalid encryption method",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x508,
        name: "disconnectReasonDNSLookupFailed2",
        meaning: "DNS lookup failed",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x604,
        name: "disconnectReasonGetHostByNameFailed",
        meaning: "gethostbyname failed",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x606,
        name: "disconnectReasonInvalidServerSecurityInfo",
        meaning: "invalid server security data",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x608,
        name: "disconnectReasonTimerError",
        meaning: "internal timer error",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x704,
        name: "disconnectReasonTimeoutOccurred",
        meaning: "time-out occurred",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x706,
        name: "disconnectReasonServerCertificateUnpackErr",
        meaning: "server certificate did not unpack",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x804,
        name: "disconnectReasonInvalidIP",
        meaning: "bad IP address",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: SSL_ERR_LOGON_FAILURE,
        name: "SSL_ERR_LOGON_FAILURE",
        meaning: "logon failed",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: DISC_LICENSING_FAILED,
        name: "disconnectReasonLicensingFailed",
        meaning: "license negotiation failed",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: DISC_SOCKET_CLOSED,
        name: "disconnectReasonAtClientWinsockFDCLOSE",
        meaning: "socket closed",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x906,
        name: "disconnectReasonInternalSecurityError",
        meaning: "internal security error",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x908,
        name: "disconnectReasonLicensingTimeout",
        meaning: "licensing time-out",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0xA06,
        name: "disconnectReasonInternalSecurityError2",
        meaning: "internal security error",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: SSL_ERR_NO_SUCH_USER,
        name: "SSL_ERR_NO_SUCH_USER",
        meaning: "the user has no account",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0xB06,
        name: "disconnectReasonEncryptionError",
        meaning: "encryption error",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: SSL_ERR_ACCOUNT_DISABLED,
        name: "SSL_ERR_ACCOUNT_DISABLED",
        meaning: "the account is disabled",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: DISC_HYBRID_REQUIRED_BY_SERVER,
        name: "(no published name)",
        meaning: "the remote computer requires network level authentication",
        section: "mstscax message text, reported (mRemoteNG issue 875)",
    },
    CodeEntry {
        code: 0xC06,
        name: "disconnectReasonDecryptionError",
        meaning: "decryption error",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: SSL_ERR_ACCOUNT_RESTRICTION,
        name: "SSL_ERR_ACCOUNT_RESTRICTION",
        meaning: "the account is restricted",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0xC08,
        name: "disconnectReasonClientDecompressionError",
        meaning: "decompression error",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: SSL_ERR_ACCOUNT_LOCKED_OUT,
        name: "SSL_ERR_ACCOUNT_LOCKED_OUT",
        meaning: "the account is locked out",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: SSL_ERR_ACCOUNT_EXPIRED,
        name: "SSL_ERR_ACCOUNT_EXPIRED",
        meaning: "the account has expired",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: SSL_ERR_PASSWORD_EXPIRED,
        name: "SSL_ERR_PASSWORD_EXPIRED",
        meaning: "the password has expired",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: SSL_ERR_PASSWORD_MUST_CHANGE,
        name: "SSL_ERR_PASSWORD_MUST_CHANGE",
        meaning: "the password must be changed before the first logon",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x1607,
        name: "SSL_ERR_DELEGATION_POLICY",
        meaning: "policy does not allow delegating credentials to this server",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x1707,
        name: "SSL_ERR_POLICY_NTLM_ONLY",
        meaning: "credential delegation needs mutual authentication, and only NTLM was possible",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: SSL_ERR_NO_AUTHENTICATING_AUTHORITY,
        name: "SSL_ERR_NO_AUTHENTICATING_AUTHORITY",
        meaning: "no authority could be contacted for authentication",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x1B07,
        name: "SSL_ERR_CERT_EXPIRED",
        meaning: "the received certificate has expired",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: SSL_ERR_SMARTCARD_WRONG_PIN,
        name: "SSL_ERR_SMARTCARD_WRONG_PIN",
        meaning: "wrong smart card PIN",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: 0x2107,
        name: "SSL_ERR_FRESH_CRED_REQUIRED_BY_SERVER",
        meaning: "the server does not accept saved credentials",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
    CodeEntry {
        code: SSL_ERR_SMARTCARD_CARD_BLOCKED,
        name: "SSL_ERR_SMARTCARD_CARD_BLOCKED",
        meaning: "the smart card is blocked",
        section: "mstscax IMsTscAxEvents::OnDisconnected",
    },
];

/// ExtendedDisconnectReasonCode values. From exDiscReasonProtocolRangeStart to exDiscReasonProtocolRangeEnd
/// the extended code is the errorInfo value of the server's Set Error Info PDU ([2.2.5.1.1]).
pub static EXTENDED_ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: EXT_NO_INFO,
        name: "exDiscReasonNoInfo",
        meaning: "no additional information",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x1,
        name: "exDiscReasonAPIInitiatedDisconnect",
        meaning: "an application initiated the disconnection",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x2,
        name: "exDiscReasonAPIInitiatedLogoff",
        meaning: "an application logged the client off",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x3,
        name: "exDiscReasonServerIdleTimeout",
        meaning: "the server idle time-out expired",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x4,
        name: "exDiscReasonServerLogonTimeout",
        meaning: "the server connection time limit expired",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x5,
        name: "exDiscReasonReplacedByOtherConnection",
        meaning: "another connection replaced this one",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x6,
        name: "exDiscReasonOutOfMemory",
        meaning: "no memory available",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: EXT_SERVER_DENIED_CONNECTION,
        name: "exDiscReasonServerDeniedConnection",
        meaning: "server denied the connection",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x8,
        name: "exDiscReasonServerDeniedConnectionFips",
        meaning: "server denied the connection for security reasons",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x9,
        name: "exDiscReasonServerInsufficientPrivileges",
        meaning: "server denied the connection: insufficient privileges",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0xA,
        name: "exDiscReasonServerFreshCredsRequired",
        meaning: "fresh credentials are required",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0xB,
        name: "exDiscReasonRpcInitiatedDisconnectByUser",
        meaning: "user activity initiated the disconnection",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0xC,
        name: "exDiscReasonLogoffByUser",
        meaning: "the user logged off",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x100,
        name: "exDiscReasonLicenseInternal",
        meaning: "internal licensing error",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x101,
        name: "exDiscReasonLicenseNoLicenseServer",
        meaning: "no license server available",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x102,
        name: "exDiscReasonLicenseNoLicense",
        meaning: "no valid license available",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x103,
        name: "exDiscReasonLicenseErrClientMsg",
        meaning: "the remote computer received an invalid licensing message",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x104,
        name: "exDiscReasonLicenseHwidDoesntMatchLicense",
        meaning: "the hardware id does not match the license",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x105,
        name: "exDiscReasonLicenseErrClientLicense",
        meaning: "client license error",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x106,
        name: "exDiscReasonLicenseCantFinishProtocol",
        meaning: "network problems during the licensing protocol",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x107,
        name: "exDiscReasonLicenseClientEndedProtocol",
        meaning: "the client ended the licensing protocol early",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x108,
        name: "exDiscReasonLicenseErrClientEncryption",
        meaning: "a licensing message was wrongly encrypted",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x109,
        name: "exDiscReasonLicenseCantUpgradeLicense",
        meaning: "the client access license could not be upgraded or renewed",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x10A,
        name: "exDiscReasonLicenseNoRemoteConnections",
        meaning: "the remote computer is not licensed for remote connections",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x10B,
        name: "exDiscReasonLicenseCreatingLicStoreAccDenied",
        meaning: "access denied creating the license store registry key",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x300,
        name: "exDiscReasonRdpEncInvalidCredentials",
        meaning: "invalid credentials",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x1000,
        name: "exDiscReasonProtocolRangeStart",
        meaning: "start of the protocol error range (the server event log has details)",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
    CodeEntry {
        code: 0x7FFF,
        name: "exDiscReasonProtocolRangeEnd",
        meaning: "end of the protocol error range",
        section: "mstscax ExtendedDisconnectReasonCode",
    },
];
