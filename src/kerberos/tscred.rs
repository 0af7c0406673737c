//! [MS-CSSP] 2.2.1.2 TSCredentials: what the client delegates in authInfo. rdptrace writes the password
//! form for its own logon, and reads only the credential type of another client's (never the credentials).

use super::der;
use crate::wire::Reader;

/// [MS-CSSP] 2.2.1.2 credType: TSPasswordCreds.
pub const PASSWORD: i64 = 1;
/// [MS-CSSP] 2.2.1.2 credType: TSSmartCardCreds.
pub const SMART_CARD: i64 = 2;
/// [MS-CSSP] 2.2.1.2 credType: TSRemoteGuardCreds (Remote Credential Guard).
pub const REMOTE_GUARD: i64 = 6;

/// [MS-CSSP] 2.2.1.2.1 TSPasswordCreds in TSCredentials, the strings UTF-16LE. The result holds the
/// password: the caller encrypts it at once and drops it.
pub fn write_password(domain: &str, user: &str, password: &str) -> Vec<u8> {
    let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_le_bytes).collect() };
    let field =
        |n: u8, s: &str| der::write(der::CONTEXT | n, &der::write(der::OCTET_STRING, &utf16(s)));
    let mut creds = field(0, domain);
    creds.extend(field(1, user));
    creds.extend(field(2, password));
    let creds = der::write(der::SEQUENCE, &creds);
    let mut ts = der::write(der::CONTEXT, &der::write(der::INTEGER, &[1]));
    ts.extend(der::write(
        der::CONTEXT | 1,
        &der::write(der::OCTET_STRING, &creds),
    ));
    der::write(der::SEQUENCE, &ts)
}

/// [MS-CSSP] 2.2.1.2 the credType of a TSCredentials; the credentials themselves are not read.
pub fn cred_type(bytes: &[u8]) -> Option<i64> {
    let mut r = Reader::new(bytes);
    let f = der::sequence(&mut r, "TSCredentials").ok()?;
    der::integer(&mut f.get(0)?, "credType").ok()
}

/// The credential type by name.
pub fn cred_type_name(kind: i64) -> String {
    match kind {
        PASSWORD => "password (TSPasswordCreds)".to_owned(),
        SMART_CARD => "smart card (TSSmartCardCreds)".to_owned(),
        REMOTE_GUARD => "Remote Credential Guard (TSRemoteGuardCreds)".to_owned(),
        other => format!("credType {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_credentials_read_back_as_their_type() {
        let bytes = write_password("CORP", "alice", "secret");
        assert_eq!(cred_type(&bytes), Some(PASSWORD));
        assert_eq!(cred_type(b"\x30\x00"), None);
        // The same bytes as sspi writes for the same identity.
        let identity = sspi::AuthIdentity {
            username: sspi::Username::new("alice", Some("CORP")).unwrap(),
            password: "secret".to_owned().into(),
        };
        let buffers = sspi::CredentialsBuffers::AuthIdentity(identity.into());
        let theirs = sspi::credssp::write_ts_credentials(
            &buffers,
            sspi::credssp::CredSspMode::WithCredentials,
        )
        .unwrap();
        assert_eq!(bytes, theirs);
    }
}
