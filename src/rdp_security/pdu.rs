//! The wire structures Standard RDP Security touches: security headers ([2.2.8.1.1.2]), MCS Send Data frames
//! ([T.125] 11.32, [2.2.8.1.1]), fast-path frames ([2.2.8.1.2], [2.2.9.1.2]), the GCC user data of the MCS
//! Connect PDUs ([2.2.1.3], [2.2.1.4]) and the Security Exchange PDU ([2.2.1.10]).
//!
//! Every function reads through [`Reader`] and returns an error on short or inconsistent input.

use ironrdp_pdu::tpdu::TpduCode;
use ironrdp_pdu::tpkt::TpktHeader;

use super::{Result, SecurityError};
use crate::dissect::active::{SEND_DATA_INDICATION, SEND_DATA_REQUEST};
use crate::dissect::mcs_connect::{
    CLIENT_H221_KEY, SERVER_H221_KEY, UserDataBlock, user_data_blocks,
};
pub use crate::dissect::mcs_connect::{CS_SECURITY, SC_SECURITY};
use crate::wire::{Reader, WireResult};

/// [2.2.8.1.1.2.1] Security header flags.
pub const SEC_EXCHANGE_PKT: u16 = 0x0001;
pub const SEC_TRANSPORT_REQ: u16 = 0x0002;
pub const SEC_TRANSPORT_RSP: u16 = 0x0004;
pub const SEC_ENCRYPT: u16 = 0x0008;
pub const SEC_INFO_PKT: u16 = 0x0040;
pub const SEC_LICENSE_PKT: u16 = 0x0080;
/// SEC_LICENSE_ENCRYPT_CS (from the server) and SEC_LICENSE_ENCRYPT_SC (from the client) share this value.
pub const SEC_LICENSE_ENCRYPT: u16 = 0x0200;
pub const SEC_REDIRECTION_PKT: u16 = 0x0400;
/// [5.3.6.1.1] The MAC is salted with the encryption count.
pub const SEC_SECURE_CHECKSUM: u16 = 0x0800;
pub const SEC_AUTODETECT_REQ: u16 = 0x1000;
pub const SEC_AUTODETECT_RSP: u16 = 0x2000;
pub const SEC_HEARTBEAT: u16 = 0x4000;

/// [2.2.8.1.1.2.1] A basic security header: flags and flagsHi.
pub const BASIC_SECURITY_HEADER_LEN: usize = 4;

/// The flags that name a PDU carried with a security header even at encryption level NONE ([5.3.8]).
pub const PDU_TYPE_FLAGS: u16 = SEC_EXCHANGE_PKT
    | SEC_TRANSPORT_REQ
    | SEC_TRANSPORT_RSP
    | SEC_INFO_PKT
    | SEC_LICENSE_PKT
    | SEC_REDIRECTION_PKT
    | SEC_AUTODETECT_REQ
    | SEC_AUTODETECT_RSP
    | SEC_HEARTBEAT;

/// [2.2.9.1.2] FASTPATH_OUTPUT_SECURE_CHECKSUM / [2.2.8.1.2] FASTPATH_INPUT_SECURE_CHECKSUM.
pub const FASTPATH_SECURE_CHECKSUM: u8 = 0x1;
/// [2.2.9.1.2] FASTPATH_OUTPUT_ENCRYPTED / [2.2.8.1.2] FASTPATH_INPUT_ENCRYPTED.
pub const FASTPATH_ENCRYPTED: u8 = 0x2;

/// [2.2.8.1.1.2.3] TSFIPS_VERSION1.
pub const TSFIPS_VERSION1: u8 = 0x01;

/// [2.2.8.1.1.2.3] The FIPS fields of a security header (or [2.2.8.1.2.1] fast-path fipsInformation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FipsInfo {
    /// 0x10 in a slow-path header.
    pub length: u16,
    pub version: u8,
    pub pad: u8,
}

impl FipsInfo {
    pub fn new(pad: u8) -> FipsInfo {
        FipsInfo {
            length: 0x10,
            version: TSFIPS_VERSION1,
            pad,
        }
    }

    fn read(r: &mut Reader<'_>) -> WireResult<FipsInfo> {
        Ok(FipsInfo {
            length: r.u16_le("fips length")?,
            version: r.u8("fips version")?,
            pad: r.u8("fips padlen")?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.length.to_le_bytes());
        out.push(self.version);
        out.push(self.pad);
    }
}

/// [2.2.8.1.1.2] A security header: basic, non-FIPS (with a MAC) or FIPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityHeader {
    pub flags: u16,
    pub flags_hi: u16,
    pub fips: Option<FipsInfo>,
    pub signature: Option<[u8; 8]>,
}

impl SecurityHeader {
    pub fn basic(flags: u16) -> SecurityHeader {
        SecurityHeader {
            flags,
            flags_hi: 0,
            fips: None,
            signature: None,
        }
    }

    /// Reads the header at the start of `data` (the FIPS form when `fips` and SEC_ENCRYPT is set); returns it
    /// and the body after it. An error before [`BASIC_SECURITY_HEADER_LEN`] is data too short for any
    /// security header; one after it, encrypted data too short for its MAC.
    pub fn read(data: &[u8], fips: bool) -> WireResult<(SecurityHeader, &[u8])> {
        let mut r = Reader::new(data);
        let flags = r.u16_le("security header flags")?;
        let flags_hi = r.u16_le("security header flagsHi")?;
        let mut header = SecurityHeader::basic(flags);
        header.flags_hi = flags_hi;
        if flags & SEC_ENCRYPT != 0 {
            if fips {
                header.fips = Some(FipsInfo::read(&mut r)?);
            }
            header.signature = Some(signature(&mut r)?);
        }
        Ok((header, r.rest()))
    }

    pub fn write(&self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + body.len());
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.flags_hi.to_le_bytes());
        if let Some(fips) = &self.fips {
            fips.write(&mut out);
        }
        if let Some(sig) = &self.signature {
            out.extend_from_slice(sig);
        }
        out.extend_from_slice(body);
        out
    }
}

fn signature(r: &mut Reader<'_>) -> WireResult<[u8; 8]> {
    r.array("dataSignature")
}

/// Whether I/O channel user data starts with a basic security header rather than a share control header: a
/// share control header's second field (pduType) carries the protocol version 0x10 ([2.2.8.1.1.1.1]), a
/// security header's (flagsHi) is zero unless SEC_FLAGSHI_VALID is set.
pub fn starts_with_security_header(data: &[u8]) -> bool {
    match data {
        [lo, hi, t0, t1, ..] => {
            let first = u16::from_le_bytes([*lo, *hi]);
            let second = u16::from_le_bytes([*t0, *t1]);
            second & 0xfff0 != 0x0010 && first != 0x8000
        }
        _ => false,
    }
}

/// [T.125] 11.32 / 11.33 An MCS Send Data Request or Indication in a TPKT and an X.224 Data TPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendData<'a> {
    /// The bytes before the MCS PDU (TPKT and X.224 headers).
    pub head: &'a [u8],
    pub indication: bool,
    pub initiator: u16,
    pub channel: u16,
    /// dataPriority and segmentation.
    pub control: u8,
    pub data: &'a [u8],
}

impl<'a> SendData<'a> {
    /// The Send Data PDU in a frame; `None` when the frame holds another PDU.
    pub fn parse(frame: &'a [u8]) -> Option<Result<SendData<'a>>> {
        let start = mcs_start(frame)?;
        let choice = frame.get(start)? >> 2;
        if choice != SEND_DATA_REQUEST && choice != SEND_DATA_INDICATION {
            return None;
        }
        Some(Self::read(frame, start).map_err(SecurityError::from))
    }

    /// [T.125] 11.32 / 11.33 The Send Data PDU at `start` in `frame`.
    fn read(frame: &'a [u8], start: usize) -> WireResult<SendData<'a>> {
        let mut r = Reader::with_base(frame.get(start..).unwrap_or_default(), start);
        let indication = r.u8("mcs choice")? >> 2 == SEND_DATA_INDICATION;
        let initiator = r.u16_be("initiator")?;
        let channel = r.u16_be("channelId")?;
        let control = r.u8("dataPriority and segmentation")?;
        let len = r.per_length("userData length")?;
        let data = r.bytes(len, "userData")?;
        Ok(SendData {
            head: frame.get(..start).unwrap_or_default(),
            indication,
            initiator,
            channel,
            control,
            data,
        })
    }

    /// The same PDU with other user data.
    pub fn encode(&self, data: &[u8]) -> Result<Vec<u8>> {
        let mut mcs = Vec::with_capacity(8 + data.len());
        let choice = if self.indication {
            SEND_DATA_INDICATION
        } else {
            SEND_DATA_REQUEST
        };
        mcs.push(choice << 2);
        mcs.extend_from_slice(&self.initiator.to_be_bytes());
        mcs.extend_from_slice(&self.channel.to_be_bytes());
        mcs.push(self.control);
        mcs.extend_from_slice(&per_length(data.len())?);
        mcs.extend_from_slice(data);
        tpkt(self.head, &mcs)
    }
}

/// [T.123] 8 / [X.224] 13.7 Where the MCS PDU of a TPKT holding an X.224 Data TPDU starts; `None` for another
/// frame.
fn mcs_start(frame: &[u8]) -> Option<usize> {
    let mut r = Reader::new(frame);
    if r.u8("tpkt version").ok()? != TpktHeader::VERSION {
        return None;
    }
    r.skip(3, "tpkt").ok()?;
    let li = usize::from(r.u8("x224 length indicator").ok()?);
    if TpduCode::from(r.u8("x224 code").ok()? & 0xf0) != TpduCode::DATA {
        return None;
    }
    r.skip(li.checked_sub(1)?, "x224 header").ok()?;
    Some(r.offset())
}

/// A TPKT frame of `head` (TPKT and X.224 headers, the length rewritten) and `body`.
fn tpkt(head: &[u8], body: &[u8]) -> Result<Vec<u8>> {
    let len = head.len() + body.len();
    let len16 = u16::try_from(len)
        .map_err(|_| SecurityError::Unsupported(format!("a {len}-byte tpkt frame")))?;
    let mut out = head.to_vec();
    // [T.123] 8 The length is bytes 2 and 3 of the TPKT header.
    let Some(length) = out.get_mut(2..TpktHeader::SIZE) else {
        return Err(SecurityError::Malformed(
            "a tpkt header shorter than 4 bytes".to_owned(),
        ));
    };
    length.copy_from_slice(&len16.to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// [X.691] A PER length determinant (one byte below 0x80, two below 0x4000).
fn per_length(n: usize) -> Result<Vec<u8>> {
    match n {
        0..0x80 => Ok(vec![n as u8]),
        0x80..0x4000 => Ok(vec![0x80 | (n >> 8) as u8, (n & 0xff) as u8]),
        _ => Err(SecurityError::Unsupported(format!(
            "{n} bytes of mcs user data (fragmented pdus are not rewritten)"
        ))),
    }
}

/// A PER length of at least `width` bytes.
fn per_length_width(n: usize, width: usize) -> Result<Vec<u8>> {
    if width >= 2 && n < 0x4000 {
        return Ok(vec![0x80 | (n >> 8) as u8, (n & 0xff) as u8]);
    }
    per_length(n)
}

/// [X.690] A BER length of at least `width` bytes.
fn ber_length_width(n: usize, width: usize) -> Result<Vec<u8>> {
    let need = match n {
        0..0x80 => 1,
        0x80..0x100 => 2,
        0x100..0x10000 => 3,
        _ => {
            return Err(SecurityError::Unsupported(format!(
                "a {n}-byte mcs connect pdu"
            )));
        }
    };
    Ok(match need.max(width.min(3)) {
        1 => vec![n as u8],
        2 => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, (n & 0xff) as u8],
    })
}

/// How many bytes a length took.
fn width(before: usize, after: usize) -> usize {
    after - before
}

/// [2.2.9.1.2] / [2.2.8.1.2] A fast-path PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastPath<'a> {
    /// The first byte without its two flag bits (action, and numEvents in input PDUs).
    pub header: u8,
    /// FASTPATH_*_SECURE_CHECKSUM and FASTPATH_*_ENCRYPTED.
    pub flags: u8,
    pub fips: Option<FipsInfo>,
    pub signature: Option<[u8; 8]>,
    pub data: &'a [u8],
}

impl<'a> FastPath<'a> {
    /// Reads a fast-path frame; the FIPS information is expected when `fips` and the PDU is encrypted.
    pub fn parse(frame: &'a [u8], fips: bool) -> Result<FastPath<'a>> {
        let mut r = Reader::new(frame);
        let first = r.u8("fast-path header")?;
        let b1 = r.u8("fast-path length")?;
        let len = if b1 & 0x80 != 0 {
            (usize::from(b1 & 0x7f) << 8) | usize::from(r.u8("fast-path length")?)
        } else {
            usize::from(b1)
        };
        if len != frame.len() {
            return Err(SecurityError::Malformed(format!(
                "a fast-path length of {len} in a {}-byte frame",
                frame.len()
            )));
        }
        let flags = first >> 6;
        let mut pdu = FastPath {
            header: first & 0x3f,
            flags,
            fips: None,
            signature: None,
            data: &[],
        };
        if flags & FASTPATH_ENCRYPTED != 0 {
            if fips {
                pdu.fips = Some(FipsInfo::read(&mut r)?);
            }
            pdu.signature = Some(signature(&mut r)?);
        }
        pdu.data = r.rest();
        Ok(pdu)
    }

    /// The frame, with its length.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let sec = self.fips.map_or(0, |_| 4) + self.signature.map_or(0, |_| 8);
        let short = 2 + sec + self.data.len();
        let (total, long) = if short <= 0x7f {
            (short, false)
        } else {
            (short + 1, true)
        };
        if total > 0x7fff {
            return Err(SecurityError::Unsupported(format!(
                "a {total}-byte fast-path pdu"
            )));
        }
        let mut out = Vec::with_capacity(total);
        out.push((self.flags << 6) | (self.header & 0x3f));
        if long {
            out.push(0x80 | (total >> 8) as u8);
            out.push((total & 0xff) as u8);
        } else {
            out.push(total as u8);
        }
        if let Some(fips) = &self.fips {
            fips.write(&mut out);
        }
        if let Some(sig) = &self.signature {
            out.extend_from_slice(sig);
        }
        out.extend_from_slice(self.data);
        Ok(out)
    }
}

/// Whether a frame is fast-path (not TPKT).
pub fn is_fast_path(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 0x03 == 0)
}

/// [2.2.1.3] / [2.2.1.4] An MCS Connect Initial or Connect Response frame, cut where its GCC user data blocks
/// are, so that a block can be changed and every enclosing length follows.
#[derive(Debug, Clone)]
pub struct McsConnect<'a> {
    /// TPKT and X.224 Data headers.
    head: &'a [u8],
    /// 0x7f65 (Connect-Initial) or 0x7f66 (Connect-Response).
    tag: &'a [u8],
    outer_width: usize,
    /// The BER fields before userData.
    fields: &'a [u8],
    user_data_width: usize,
    /// [T.124] the GCC ConnectData key.
    gcc_key: &'a [u8],
    connect_len: usize,
    connect_len_width: usize,
    /// The Conference Create Request / Response up to and including its H.221 key.
    ccr_head: &'a [u8],
    blocks_width: usize,
    /// TS_UD_HEADER blocks: (type, body without the header).
    pub blocks: Vec<(u16, &'a [u8])>,
    /// Bytes after the blocks, inside userData.
    trailing: &'a [u8],
    /// Bytes after userData.
    after: &'a [u8],
}

impl<'a> McsConnect<'a> {
    /// Parses an MCS Connect Initial or Connect Response frame; `None` when the frame is neither.
    pub fn parse(frame: &'a [u8]) -> Option<Result<McsConnect<'a>>> {
        let start = mcs_start(frame)?;
        // [T.125] 7 Connect-Initial (0x7f65) or Connect-Response (0x7f66).
        matches!(frame.get(start..)?, [0x7f, 0x65 | 0x66, ..]).then(|| Self::parse_at(frame, start))
    }

    fn parse_at(frame: &'a [u8], start: usize) -> Result<McsConnect<'a>> {
        let mut r = Reader::with_base(frame.get(start..).unwrap_or(&[]), start);
        let tag = r.bytes(2, "mcs connect tag")?;
        let before = r.offset();
        let outer_len = r.ber_length("mcs connect length")?;
        let outer_width = width(before, r.offset());
        let mut body = r.sub(outer_len.min(r.remaining()), "mcs connect body")?;
        let after = r.rest();
        let fields_start = body.offset();
        // INVARIANT: each pass consumes a tag and a length, or stops; the body is finite.
        let (user_data_width, user_data, fields_end) = loop {
            if body.remaining() == 0 {
                return Err(SecurityError::Malformed(
                    "an mcs connect pdu without user data".to_owned(),
                ));
            }
            let field_start = body.offset();
            let t = body.u8("ber tag")?;
            let before = body.offset();
            let len = body.ber_length("ber length")?;
            let w = width(before, body.offset());
            let value = body.bytes(len, "ber value")?;
            if t == 0x04 && body.remaining() == 0 {
                break (w, value, field_start);
            }
        };
        let fields = frame.get(fields_start..fields_end).unwrap_or_default();
        let user_base = fields_end + 1 + user_data_width;
        let mut u = Reader::with_base(user_data, user_base);
        let gcc_key = u.bytes(7, "gcc connect data key")?;
        let before = u.offset();
        let connect_len = u.per_length("connectPDU length")?;
        let connect_len_width = width(before, u.offset());
        let ccr = u.rest();
        let key_at = ccr
            .windows(4)
            .position(|w| w == CLIENT_H221_KEY || w == SERVER_H221_KEY)
            .ok_or_else(|| {
                SecurityError::Malformed("no h.221 key in the gcc user data".to_owned())
            })?;
        let key_end = key_at + 4;
        let ccr_head = ccr.get(..key_end).unwrap_or_default();
        let mut b = Reader::new(ccr.get(key_end..).unwrap_or_default());
        let before = b.offset();
        let blocks_len = b.per_length("gcc user data length")?;
        let blocks_width = width(before, b.offset());
        let blocks_r = b.sub(blocks_len.min(b.remaining()), "gcc user data")?;
        let trailing = b.rest();
        let blocks = user_data_blocks(blocks_r)
            .map(|block| block.map(|UserDataBlock { kind, body }| (kind, body.rest())))
            .collect::<core::result::Result<Vec<_>, _>>()?;
        Ok(McsConnect {
            head: frame.get(..start).unwrap_or_default(),
            tag,
            outer_width,
            fields,
            user_data_width,
            gcc_key,
            connect_len,
            connect_len_width,
            ccr_head,
            blocks_width,
            blocks,
            trailing,
            after,
        })
    }

    /// The body of the first block of `kind`.
    pub fn block(&self, kind: u16) -> Option<&'a [u8]> {
        self.blocks
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, b)| *b)
    }

    /// The frame with the body of block `kind` replaced by `body` (every enclosing length rewritten).
    pub fn with_block(&self, kind: u16, body: &[u8]) -> Result<Vec<u8>> {
        let mut blocks = Vec::new();
        for (k, b) in &self.blocks {
            let b: &[u8] = if *k == kind { body } else { b };
            let len = u16::try_from(b.len() + 4).map_err(|_| {
                SecurityError::Unsupported(format!("a {}-byte gcc user data block", b.len()))
            })?;
            blocks.extend_from_slice(&k.to_le_bytes());
            blocks.extend_from_slice(&len.to_le_bytes());
            blocks.extend_from_slice(b);
        }
        let mut ccr = self.ccr_head.to_vec();
        ccr.extend_from_slice(&per_length_width(blocks.len(), self.blocks_width)?);
        ccr.extend_from_slice(&blocks);
        ccr.extend_from_slice(self.trailing);
        // Windows writes a connectPDU length that does not match (0x2a in [4.1.4]); such a value is kept.
        let old_ccr_len = self.ccr_head.len()
            + self.blocks_width
            + self.blocks.iter().map(|(_, b)| b.len() + 4).sum::<usize>()
            + self.trailing.len();
        let connect_len = if self.connect_len == old_ccr_len {
            ccr.len()
        } else {
            self.connect_len
        };
        let mut user_data = self.gcc_key.to_vec();
        user_data.extend_from_slice(&per_length_width(connect_len, self.connect_len_width)?);
        user_data.extend_from_slice(&ccr);
        let mut body = self.fields.to_vec();
        body.push(0x04);
        body.extend_from_slice(&ber_length_width(user_data.len(), self.user_data_width)?);
        body.extend_from_slice(&user_data);
        let mut mcs = self.tag.to_vec();
        mcs.extend_from_slice(&ber_length_width(body.len(), self.outer_width)?);
        mcs.extend_from_slice(&body);
        mcs.extend_from_slice(self.after);
        tpkt(self.head, &mcs)
    }
}

/// [2.2.1.4.3] The Server Security Data of a Connect Response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSecurityData<'a> {
    pub method: u32,
    pub level: u32,
    pub server_random: &'a [u8],
    pub certificate: &'a [u8],
}

impl<'a> ServerSecurityData<'a> {
    pub fn parse(body: &'a [u8]) -> Result<ServerSecurityData<'a>> {
        let mut r = Reader::new(body);
        let method = r.u32_le("encryptionMethod")?;
        let level = r.u32_le("encryptionLevel")?;
        if method == 0 && level == 0 {
            return Ok(ServerSecurityData {
                method,
                level,
                server_random: &[],
                certificate: &[],
            });
        }
        let random_len = r.u32_le("serverRandomLen")? as usize;
        let cert_len = r.u32_le("serverCertLen")? as usize;
        let server_random = r.bytes(random_len, "serverRandom")?;
        let certificate = r.bytes(cert_len, "serverCertificate")?;
        Ok(ServerSecurityData {
            method,
            level,
            server_random,
            certificate,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.server_random.len() + self.certificate.len());
        out.extend_from_slice(&self.method.to_le_bytes());
        out.extend_from_slice(&self.level.to_le_bytes());
        if self.method != 0 || self.level != 0 {
            out.extend_from_slice(&(self.server_random.len() as u32).to_le_bytes());
            out.extend_from_slice(&(self.certificate.len() as u32).to_le_bytes());
            out.extend_from_slice(self.server_random);
            out.extend_from_slice(self.certificate);
        }
        out
    }

    /// Encryption method and level NONE: what ironrdp's connector accepts.
    pub fn none() -> ServerSecurityData<'static> {
        ServerSecurityData {
            method: 0,
            level: 0,
            server_random: &[],
            certificate: &[],
        }
    }
}

/// [2.2.1.10.1] The user data of a Security Exchange PDU: SEC_EXCHANGE_PKT (with SEC_LICENSE_ENCRYPT_SC: the
/// client takes encrypted licensing PDUs), the length, the encrypted client random.
pub fn security_exchange(encrypted_random: &[u8]) -> Vec<u8> {
    let mut out = SecurityHeader::basic(SEC_EXCHANGE_PKT | SEC_LICENSE_ENCRYPT).write(&[]);
    out.extend_from_slice(&(encrypted_random.len() as u32).to_le_bytes());
    out.extend_from_slice(encrypted_random);
    out
}

/// [2.2.1.10.1] The encrypted client random of a Security Exchange PDU's body (after the basic header).
pub fn read_security_exchange(body: &[u8]) -> Result<&[u8]> {
    let mut r = Reader::new(body);
    let len = r.u32_le("length")? as usize;
    if len != r.remaining() {
        return Err(SecurityError::Malformed(format!(
            "a security exchange length of {len} with {} bytes after it",
            r.remaining()
        )));
    }
    Ok(r.rest())
}

/// [MS-RDPELE] 2.2.2.1 A Server License Request (the licensing PDU after its security header) without a
/// server certificate (wBlobLen 0, which a server under Standard RDP Security may send), with `certificate`
/// (the Server Security Data's, [2.2.1.4.3]) put in its place, as [MS-RDPELE] 2.2.2.1 tells a client to use
/// it; `None` when the PDU is another message or has a certificate.
pub fn license_request_with_certificate(
    body: &[u8],
    certificate: &[u8],
) -> Result<Option<Vec<u8>>> {
    const LICENSE_REQUEST: u8 = 0x01;
    const BB_CERTIFICATE_BLOB: u16 = 0x0003;
    let mut r = Reader::new(body);
    if r.u8("bMsgType")? != LICENSE_REQUEST {
        return Ok(None);
    }
    r.u8("flags")?;
    r.u16_le("wMsgSize")?;
    r.skip(32, "ServerRandom")?;
    r.u32_le("dwVersion")?;
    let company = r.u32_le("cbCompanyName")? as usize;
    r.skip(company, "pbCompanyName")?;
    let product = r.u32_le("cbProductId")? as usize;
    r.skip(product, "pbProductId")?;
    r.u16_le("KeyExchangeList wBlobType")?;
    let exchange = usize::from(r.u16_le("KeyExchangeList wBlobLen")?);
    r.skip(exchange, "KeyExchangeList blobData")?;
    let at = r.offset();
    r.u16_le("ServerCertificate wBlobType")?;
    if r.u16_le("ServerCertificate wBlobLen")? != 0 || certificate.is_empty() {
        return Ok(None);
    }
    let len = u16::try_from(certificate.len()).map_err(|_| {
        SecurityError::Unsupported(format!("a {}-byte server certificate", certificate.len()))
    })?;
    let mut out = body.get(..at).unwrap_or_default().to_vec();
    out.extend_from_slice(&BB_CERTIFICATE_BLOB.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(certificate);
    out.extend_from_slice(r.rest());
    let size = u16::try_from(out.len())
        .map_err(|_| SecurityError::Unsupported(format!("a {}-byte license request", out.len())))?;
    // INVARIANT: `out` starts with the four bytes read above (bMsgType, flags, wMsgSize).
    if let Some(msg_size) = out.get_mut(2..4) {
        msg_size.copy_from_slice(&size.to_le_bytes());
    }
    Ok(Some(out))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rdp_security::unhex;

    /// [4.1.4] The Server MCS Connect Response PDU of the annotated connection sequence.
    pub(crate) const SPEC_CONNECT_RESPONSE: &str = "
        03 00 01 51 02 f0 80 7f 66 82 01 45 0a 01 00 02
        01 00 30 1a 02 01 22 02 01 03 02 01 00 02 01 01
        02 01 00 02 01 01 02 03 00 ff f8 02 01 02 04 82
        01 1f 00 05 00 14 7c 00 01 2a 14 76 0a 01 01 00
        01 c0 00 4d 63 44 6e 81 08 01 0c 0c 00 04 00 08
        00 00 00 00 00 03 0c 10 00 eb 03 03 00 ec 03 ed
        03 ee 03 00 00 02 0c ec 00 02 00 00 00 02 00 00
        00 20 00 00 00 b8 00 00 00 10 11 77 20 30 61 0a
        12 e4 34 a1 1e f2 c3 9f 31 7d a4 5f 01 89 34 96
        e0 ff 11 08 69 7f 1a c3 d2 01 00 00 00 01 00 00
        00 01 00 00 00 06 00 5c 00 52 53 41 31 48 00 00
        00 00 02 00 00 3f 00 00 00 01 00 01 00 cb 81 fe
        ba 6d 61 c3 55 05 d5 5f 2e 87 f8 71 94 d6 f1 a5
        cb f1 5f 0c 3d f8 70 02 96 c4 fb 9b c8 3c 2d 55
        ae e8 ff 32 75 ea 68 79 e5 a2 01 fd 31 a0 b1 1f
        55 a6 1f c1 f6 d1 83 88 63 26 56 12 bc 00 00 00
        00 00 00 00 00 08 00 48 00 e9 e1 d6 28 46 8b 4e
        f5 0a df fd ee 21 99 ac b4 e1 8f 5f 81 57 82 ef
        9d 96 52 63 27 18 29 db b3 4a fd 9a da 42 ad b5
        69 21 89 0e 1d c0 4c 1a a8 aa 71 3e 0f 54 b9 9a
        e4 99 68 3f 6c d6 76 84 61 00 00 00 00 00 00 00
        00";

    #[test]
    fn the_spec_connect_response_rewrites_to_no_security_and_back() {
        let frame = unhex(SPEC_CONNECT_RESPONSE);
        let parsed = McsConnect::parse(&frame).unwrap().unwrap();
        let kinds: Vec<u16> = parsed.blocks.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, [0x0c01, 0x0c03, SC_SECURITY]);
        let sec = ServerSecurityData::parse(parsed.block(SC_SECURITY).unwrap()).unwrap();
        assert_eq!((sec.method, sec.level), (2, 2));
        assert_eq!(sec.server_random.len(), 32);
        assert_eq!(sec.certificate.len(), 184);
        // Re-encoding the same block gives the same bytes, the odd connectPDU length (0x2a) included.
        assert_eq!(
            parsed
                .with_block(SC_SECURITY, parsed.block(SC_SECURITY).unwrap())
                .unwrap(),
            frame
        );

        let stripped = parsed
            .with_block(SC_SECURITY, &ServerSecurityData::none().encode())
            .unwrap();
        // ironrdp decodes the result and sees no security.
        let x224 =
            ironrdp_core::decode::<ironrdp_pdu::x224::X224<ironrdp_pdu::x224::X224Data<'_>>>(
                &stripped,
            )
            .unwrap();
        let response =
            ironrdp_core::decode::<ironrdp_pdu::mcs::ConnectResponse>(x224.0.data.as_ref())
                .unwrap();
        let blocks = response.conference_create_response.into_gcc_blocks();
        assert_eq!(
            blocks.security,
            ironrdp_pdu::gcc::ServerSecurityData::no_security()
        );
        assert_eq!(blocks.network.io_channel, 1003);

        // And back: the block grows again, the lengths follow.
        let back = McsConnect::parse(&stripped).unwrap().unwrap();
        let again = back.with_block(SC_SECURITY, &sec.encode()).unwrap();
        assert_eq!(again, frame);
    }

    #[test]
    fn send_data_and_fast_path_round_trip() {
        // [4.1.9] The Security Exchange PDU: Send Data Request on 1003 from 1007.
        let mut frame = unhex("03 00 00 5e 02 f0 80 64 00 06 03 eb 70 50");
        let random = [0x5au8; 72];
        frame.extend_from_slice(&security_exchange(&random));
        frame[3] = frame.len() as u8;
        let sd = SendData::parse(&frame).unwrap().unwrap();
        assert_eq!((sd.indication, sd.initiator, sd.channel), (false, 6, 1003));
        let (h, body) = SecurityHeader::read(sd.data, false).unwrap();
        assert_eq!(h.flags, SEC_EXCHANGE_PKT | SEC_LICENSE_ENCRYPT);
        assert_eq!(read_security_exchange(body).unwrap(), random);
        assert_eq!(sd.encode(sd.data).unwrap(), frame);
        assert!(SendData::parse(&unhex("03 00 00 0c 02 f0 80 04 01 00 01 00")).is_none());

        let fp = FastPath {
            header: 0,
            flags: FASTPATH_ENCRYPTED,
            fips: Some(FipsInfo::new(3)),
            signature: Some([1; 8]),
            data: &[9; 200],
        };
        let bytes = fp.encode().unwrap();
        assert_eq!(bytes.len(), 3 + 4 + 8 + 200);
        assert_eq!(bytes[0], 0x80);
        assert_eq!(FastPath::parse(&bytes, true).unwrap(), fp);
        assert!(FastPath::parse(&bytes[..20], true).is_err());
    }

    #[test]
    fn security_headers() {
        let h = SecurityHeader {
            flags: SEC_ENCRYPT | SEC_SECURE_CHECKSUM,
            flags_hi: 0,
            fips: Some(FipsInfo::new(5)),
            signature: Some([2; 8]),
        };
        let bytes = h.write(b"body");
        assert_eq!(bytes.len(), 16 + 4);
        assert_eq!(
            SecurityHeader::read(&bytes, true).unwrap(),
            (h, &b"body"[..])
        );
        assert!(SecurityHeader::read(&bytes[..10], true).is_err());
        assert!(starts_with_security_header(&[0x40, 0, 0, 0, 1]));
        // A Confirm Active's share control header: totalLength, pduType 0x13.
        assert!(!starts_with_security_header(&[
            0x40, 0x01, 0x13, 0x00, 0xef, 0x03
        ]));
    }

    #[test]
    fn a_license_request_without_certificate_gets_the_server_security_data_one() {
        let cert = unhex(crate::rdp_security::cert::tests::SPEC_CERTIFICATE);
        let mut body = vec![0x01, 0x03, 0x00, 0x00];
        body.extend_from_slice(&[0x11; 32]); // ServerRandom
        body.extend_from_slice(&0x0006_0000u32.to_le_bytes()); // dwVersion
        body.extend_from_slice(&4u32.to_le_bytes());
        body.extend_from_slice(b"M\0\0\0");
        body.extend_from_slice(&4u32.to_le_bytes());
        body.extend_from_slice(b"A\0\0\0");
        body.extend_from_slice(&[0x0d, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00]); // KeyExchangeList
        body.extend_from_slice(&[0x03, 0x00, 0x00, 0x00]); // ServerCertificate, empty
        body.extend_from_slice(&1u32.to_le_bytes()); // ScopeCount
        body.extend_from_slice(&[0x0e, 0x00, 0x0e, 0x00]);
        body.extend_from_slice(b"microsoft.com\0");
        let size = body.len() as u16;
        body[2..4].copy_from_slice(&size.to_le_bytes());

        let filled = license_request_with_certificate(&body, &cert)
            .unwrap()
            .unwrap();
        assert_eq!(filled.len(), body.len() + cert.len());
        let pdu = SecurityHeader::basic(SEC_LICENSE_PKT).write(&filled);
        // ironrdp reads the key from it now, as it does from a request that carried the certificate.
        let license: ironrdp_pdu::rdp::server_license::LicensePdu =
            ironrdp_core::decode(&pdu).unwrap();
        let ironrdp_pdu::rdp::server_license::LicensePdu::ServerLicenseRequest(request) = license
        else {
            panic!("a license request");
        };
        assert!(request.get_public_key().unwrap().is_some());
        // A request with a certificate, and other messages, stay as they are.
        assert_eq!(
            license_request_with_certificate(&filled, &cert).unwrap(),
            None
        );
        assert_eq!(
            license_request_with_certificate(&[0xff, 0x03, 0x10, 0x00], &cert).unwrap(),
            None
        );
        assert!(license_request_with_certificate(&body[..40], &cert).is_err());
    }
}
