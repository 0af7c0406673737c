//! An AS-REP as sspi 0.23 reads it. [RFC 4120] 5.4.2 lets a KDC tag the encrypted part of an AS-REP
//! EncTGSRepPart ([APPLICATION 26]) instead of EncASRepPart ([APPLICATION 25]) and asks clients to accept
//! either; MIT KDCs always use 26, Windows KDCs 25, and sspi 0.23 accepts only 25. The probe decrypts that
//! part with the key sspi derives itself (the user's password and the KDC's salt), re-tags it, and encrypts
//! it again before sspi reads it.
//!
//! Nothing leaves the process and nothing is recorded: the trace shows the AS-REP as the KDC sent it.

use picky_asn1::wrapper::{ExplicitContextTag2, OctetStringAsn1};
use picky_krb::constants::key_usages::AS_REP_ENC;
use picky_krb::crypto::CipherSuite;
use picky_krb::data_types::EtypeInfo2;
use picky_krb::messages::{AsRep, KrbError};

/// [RFC 4120] 5.10 the APPLICATION tags of the two encodings (constructed).
const ENC_AS_REP_PART: u8 = 0x60 | 25;
const ENC_TGS_REP_PART: u8 = 0x60 | 26;
/// [RFC 4120] 7.5.2 PA-ETYPE-INFO2.
const PA_ETYPE_INFO2: [u8; 1] = [19];

/// The salt a KDC gives in PA-ETYPE-INFO2 of a KRB-ERROR (KDC_ERR_PREAUTH_REQUIRED).
pub(super) fn error_salt(message: &[u8]) -> Option<String> {
    let error: KrbError = picky_asn1_der::from_bytes(message).ok()?;
    let e_data = error.0.e_data.0?.0.0;
    let method_data: picky_asn1::wrapper::Asn1SequenceOf<picky_krb::data_types::PaData> =
        picky_asn1_der::from_bytes(&e_data).ok()?;
    salt_of(&method_data.0)
}

fn salt_of(pa_datas: &[picky_krb::data_types::PaData]) -> Option<String> {
    let info = pa_datas
        .iter()
        .find(|p| p.padata_type.0.0 == PA_ETYPE_INFO2)?;
    let entries: EtypeInfo2 = picky_asn1_der::from_bytes(&info.padata_data.0.0).ok()?;
    entries.0.first()?.salt.0.as_ref().map(|s| s.0.to_string())
}

/// [RFC 3961] 3 the default salt: the realm, then the name components.
fn default_salt(as_rep: &AsRep) -> String {
    let mut salt = as_rep.0.crealm.0.to_string();
    for part in &as_rep.0.cname.0.name_string.0.0 {
        salt.push_str(&part.to_string());
    }
    salt
}

/// The AS-REP `message` with its encrypted part tagged EncASRepPart, when the KDC tagged it
/// EncTGSRepPart; `None` when there is nothing to change (or it cannot be read with this password).
pub(super) fn retag_as_rep(
    message: &[u8],
    password: &str,
    salt_hint: Option<&str>,
) -> Option<Vec<u8>> {
    let mut as_rep: AsRep = picky_asn1_der::from_bytes(message).ok()?;
    let enc_part = &as_rep.0.enc_part.0;
    let suite = CipherSuite::try_from(enc_part.etype.0.0.as_slice()).ok()?;
    let cipher = suite.cipher();
    let salt = as_rep
        .0
        .padata
        .0
        .as_ref()
        .and_then(|p| salt_of(&p.0.0))
        .or_else(|| salt_hint.map(str::to_owned))
        .unwrap_or_else(|| default_salt(&as_rep));
    let key = cipher
        .generate_key_from_password(password.as_bytes(), salt.as_bytes())
        .ok()?;
    let mut plain = cipher
        .decrypt(&key, AS_REP_ENC, &enc_part.cipher.0.0)
        .ok()?;
    match plain.first_mut() {
        Some(tag) if *tag == ENC_TGS_REP_PART => *tag = ENC_AS_REP_PART,
        _ => return None,
    }
    let sealed = cipher.encrypt(&key, AS_REP_ENC, &plain).ok()?;
    as_rep.0.enc_part.0.cipher = ExplicitContextTag2::from(OctetStringAsn1::from(sealed));
    picky_asn1_der::to_vec(&as_rep).ok()
}
