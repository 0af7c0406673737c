//! [MS-CSSP] 3.1.5 The credential type in a captured CredSSP exchange that used Kerberos, opened with the
//! server's keytab: the ticket of the client's AP-REQ gives the session key and the client's subkey, the
//! AP-REP the acceptor's subkey, and with them the [RFC 4121] 4.2.6.2 Wrap token of authInfo opens to the
//! TSCredentials, of which only credType is read.
//!
//! A user-to-user ticket (draft-swift-win2k-krb-user2user: the client asked for the server's TGT first, as
//! Windows clients do) is encrypted in the session key of the server's TGT, which the keytab's `krbtgt` key
//! opens.
//!
//! Keys and the decrypted parts stay here: what leaves this module is the credential type or why it could
//! not be read.

use picky_krb::constants::key_usages::{AP_REP_ENC, INITIATOR_SEAL, TICKET_REP};
use picky_krb::crypto::CipherSuite;
use picky_krb::data_types::{EncApRepPart, EncTicketPart, EncryptedData};
use picky_krb::messages::{ApRep, TgtRep};

use super::acceptor::{self, Opened};
use super::keytab::{Entry, Key};
use super::{spnego, tscred};

/// [RFC 4121] 4.1 token IDs of the messages read here.
const TOK_AP_REP: [u8; 2] = [0x02, 0x00];
/// draft-swift-win2k-krb-user2user KERB-TGT-REPLY.
const TOK_TGT_REP: [u8; 2] = [0x04, 0x01];
/// [RFC 4121] 4.2.6.2 the Wrap token's TOK_ID, and its flags.
const TOK_WRAP: [u8; 2] = [0x05, 0x04];
const FLAG_SEALED: u8 = 0x02;
const FLAG_ACCEPTOR_SUBKEY: u8 = 0x04;
/// [RFC 4121] 4.2.6.2 the Wrap token's header length.
const WRAP_HEADER: usize = 16;

/// Why authInfo could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    #[error("no Kerberos AP-REQ was seen in this CredSSP exchange")]
    NoApReq,
    #[error("the keytab opens no ticket of this exchange: {0}")]
    Ticket(acceptor::OpenError),
    #[error("the server's AP-REP does not decrypt with the ticket's session key")]
    ApRep,
    #[error("authInfo is not a sealed Kerberos Wrap token")]
    NotWrap,
    #[error("the Wrap token does not decrypt with the exchange's keys")]
    Wrap,
    #[error("the decrypted authInfo is not a TSCredentials")]
    NotTsCredentials,
}

/// The keys of one CredSSP exchange, as its tokens go by.
pub struct ExchangeKeys {
    keytab: Vec<Entry>,
    /// The session key of the server's TGT, from a TGT-REP (user-to-user).
    u2u: Option<Key>,
    opened: Option<Opened>,
    ticket_error: Option<acceptor::OpenError>,
    acceptor_subkey: Option<(i32, Key)>,
    ap_rep_failed: bool,
}

impl core::fmt::Debug for ExchangeKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the keys.
        f.debug_struct("ExchangeKeys")
            .field("keytab_entries", &self.keytab.len())
            .field("opened", &self.opened.is_some())
            .finish_non_exhaustive()
    }
}

impl ExchangeKeys {
    pub fn new(keytab: Vec<Entry>) -> Self {
        ExchangeKeys {
            keytab,
            u2u: None,
            opened: None,
            ticket_error: None,
            acceptor_subkey: None,
            ap_rep_failed: false,
        }
    }

    /// A negoToken of the client.
    pub fn client_token(&mut self, nego_token: &[u8]) {
        let Some(ap_req) = acceptor::ap_req_of(nego_token) else {
            return;
        };
        let mut error = acceptor::OpenError::NotApReq;
        let names = acceptor::names(ap_req).ok();
        let candidates = self
            .u2u
            .iter()
            .chain(
                self.keytab
                    .iter()
                    .filter(|e| {
                        names.as_ref().is_none_or(|n| {
                            e.etype == n.etype && n.kvno.is_none_or(|k| k == e.kvno)
                        })
                    })
                    .map(|e| &e.key),
            )
            .collect::<Vec<_>>();
        for key in candidates {
            match acceptor::open(ap_req, key.expose()) {
                Ok(opened) => {
                    self.opened = Some(opened);
                    self.ticket_error = None;
                    return;
                }
                Err(e) => error = e,
            }
        }
        if let Some(n) = names.filter(|_| error == acceptor::OpenError::NotApReq) {
            error = acceptor::OpenError::NoKey(n.etype);
        }
        self.ticket_error = Some(error);
    }

    /// A negoToken of the server.
    pub fn server_token(&mut self, nego_token: &[u8]) {
        let inner = match spnego::negotiation(nego_token) {
            Some(n) => match n.inner {
                Some(inner) => inner,
                None => return,
            },
            None => nego_token,
        };
        let Some(token) = spnego::krb_token(inner) else {
            return;
        };
        match token.tok_id {
            TOK_TGT_REP => self.u2u = self.server_tgt_key(token.message),
            TOK_AP_REP => {
                let subkey = self.acceptor_subkey(token.message);
                self.ap_rep_failed = subkey.is_none() && self.opened.is_some();
                self.acceptor_subkey = subkey;
            }
            _ => {}
        }
    }

    /// draft-swift-win2k-krb-user2user the server's TGT, opened with the keytab's `krbtgt` key: its session
    /// key.
    fn server_tgt_key(&self, tgt_rep: &[u8]) -> Option<Key> {
        let rep: TgtRep = picky_asn1_der::from_bytes(tgt_rep).ok()?;
        let enc = &rep.ticket.0.0.enc_part.0;
        let etype = etype_of(enc)?;
        self.keytab
            .iter()
            .filter(|e| e.etype == etype && e.components.first().is_some_and(|c| c == "krbtgt"))
            .find_map(|e| {
                let plain = decrypt(enc, e.key.expose(), TICKET_REP)?;
                let part: EncTicketPart = picky_asn1_der::from_bytes(&plain).ok()?;
                Some(Key::new(part.0.key.0.key_value.0.0.clone()))
            })
    }

    /// [RFC 4120] 5.5.2 the AP-REP's EncAPRepPart, opened with the ticket's session key: its subkey.
    fn acceptor_subkey(&self, ap_rep: &[u8]) -> Option<(i32, Key)> {
        let opened = self.opened.as_ref()?;
        let rep: ApRep = picky_asn1_der::from_bytes(ap_rep).ok()?;
        let plain = decrypt(&rep.0.enc_part.0, opened.session_key.expose(), AP_REP_ENC)?;
        let part: EncApRepPart = picky_asn1_der::from_bytes(&plain).ok()?;
        let key = part.0.subkey.0.as_ref()?;
        let etype = i32::try_from(int(&key.0.key_type.0.0)).ok()?;
        Some((etype, Key::new(key.0.key_value.0.0.clone())))
    }

    /// [MS-CSSP] 3.1.5 the client's authInfo: the credType of the TSCredentials it seals.
    pub fn auth_info(&self, auth_info: &[u8]) -> Result<i64, UnwrapError> {
        let opened = match (&self.opened, &self.ticket_error) {
            (Some(o), _) => o,
            (None, Some(e)) => return Err(UnwrapError::Ticket(e.clone())),
            (None, None) => return Err(UnwrapError::NoApReq),
        };
        // [RFC 4121] 4.2.6.2 TOK_ID, Flags, Filler, EC, RRC, SND_SEQ.
        let header = auth_info.get(..WRAP_HEADER).ok_or(UnwrapError::NotWrap)?;
        let flags = *header.get(2).ok_or(UnwrapError::NotWrap)?;
        if header.get(..2) != Some(&TOK_WRAP[..]) || flags & FLAG_SEALED == 0 {
            return Err(UnwrapError::NotWrap);
        }
        let field = |at: usize| -> usize {
            let bytes = [
                header.get(at).copied().unwrap_or(0),
                header.get(at + 1).copied().unwrap_or(0),
            ];
            usize::from(u16::from_be_bytes(bytes))
        };
        let (ec, rrc) = (field(4), field(6));
        let mut data = auth_info.get(WRAP_HEADER..).unwrap_or_default().to_vec();
        if data.is_empty() {
            return Err(UnwrapError::NotWrap);
        }
        // [RFC 4121] 4.2.5 the sender rotated the encrypted part right by RRC bytes.
        let len = data.len();
        data.rotate_left(rrc % len);
        // [RFC 4121] 2: the acceptor's subkey when the flag says so, else the initiator's, else the session key.
        let (etype, key) = if flags & FLAG_ACCEPTOR_SUBKEY != 0 {
            if self.ap_rep_failed {
                return Err(UnwrapError::ApRep);
            }
            self.acceptor_subkey
                .as_ref()
                .map(|(t, k)| (*t, k))
                .ok_or(UnwrapError::Wrap)?
        } else {
            match &opened.subkey {
                Some((t, k)) => (*t, k),
                None => (opened.session_etype, &opened.session_key),
            }
        };
        let cipher = u8::try_from(etype)
            .ok()
            .and_then(|t| CipherSuite::try_from([t].as_slice()).ok())
            .ok_or(UnwrapError::Wrap)?
            .cipher();
        let plain = cipher
            .decrypt(key.expose(), INITIATOR_SEAL, &data)
            .map_err(|_| UnwrapError::Wrap)?;
        // [RFC 4121] 4.2.4 the plaintext is followed by EC filler bytes and a copy of the header.
        let end = plain
            .len()
            .checked_sub(WRAP_HEADER + ec)
            .ok_or(UnwrapError::NotTsCredentials)?;
        let body = plain.get(..end).ok_or(UnwrapError::NotTsCredentials)?;
        tscred::cred_type(body).ok_or(UnwrapError::NotTsCredentials)
    }
}

fn etype_of(enc: &EncryptedData) -> Option<i32> {
    i32::try_from(int(&enc.etype.0.0)).ok()
}

fn decrypt(enc: &EncryptedData, key: &[u8], usage: i32) -> Option<Vec<u8>> {
    let cipher = CipherSuite::try_from(enc.etype.0.0.as_slice())
        .ok()?
        .cipher();
    cipher.decrypt(key, usage, &enc.cipher.0.0).ok()
}

/// A DER INTEGER's content as an i64 (0 when it does not fit).
fn int(bytes: &[u8]) -> i64 {
    if bytes.len() > 8 {
        return 0;
    }
    bytes.iter().fold(0i64, |n, b| (n << 8) | i64::from(*b))
}

impl crate::dissect::CredsspSink for ExchangeKeys {
    fn nego_token(&mut self, from: crate::trace::Side, token: &[u8]) {
        match from {
            crate::trace::Side::Client => self.client_token(token),
            crate::trace::Side::Server => self.server_token(token),
        }
    }

    fn auth_info(&mut self, auth_info: &[u8]) -> Result<i64, UnwrapError> {
        ExchangeKeys::auth_info(self, auth_info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_that_are_not_wrap_tokens_are_named() {
        let keys = ExchangeKeys::new(Vec::new());
        assert_eq!(keys.auth_info(&[0; 40]), Err(UnwrapError::NoApReq));
        let mut keys = ExchangeKeys::new(Vec::new());
        keys.ticket_error = Some(acceptor::OpenError::NoKey(18));
        assert_eq!(
            keys.auth_info(&[0; 40]),
            Err(UnwrapError::Ticket(acceptor::OpenError::NoKey(18)))
        );
    }
}
