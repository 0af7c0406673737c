//! [RFC 1035] the DNS messages of one SRV lookup ([RFC 2782]), sans-IO: the query for
//! `_kerberos._tcp.REALM` ([RFC 4120] 7.2.3.2) and the records of the answer.

use crate::wire::{Reader, WireError, WireResult};

/// [RFC 2782] the SRV record type.
const TYPE_SRV: u16 = 33;
const CLASS_IN: u16 = 1;
/// Bound on the records read from one answer.
const MAX_RECORDS: usize = 64;
/// Bound on the compression pointers followed in one name.
const MAX_POINTERS: usize = 16;

/// [RFC 2782] one SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The host, without the trailing dot.
    pub target: String,
}

/// [RFC 1035] 4.1 a standard query with recursion desired for the SRV records of `name`.
pub fn srv_query(id: u16, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 18);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    for label in name.trim_end_matches('.').split('.') {
        let bytes = label.as_bytes();
        let len = bytes.len().min(63);
        out.push(u8::try_from(len).unwrap_or(63));
        out.extend_from_slice(bytes.get(..len).unwrap_or(bytes));
    }
    out.push(0);
    out.extend_from_slice(&TYPE_SRV.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// What a DNS server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The SRV records, best first ([RFC 2782]: lowest priority, then highest weight).
    Records(Vec<Srv>),
    /// [RFC 1035] 4.1.1 RCODE, nonzero (3: the name does not exist).
    Error(u8),
}

/// [RFC 1035] 4.1 reads the answer to the query with this id.
pub fn srv_answer(id: u16, message: &[u8]) -> WireResult<Answer> {
    let mut r = Reader::new(message);
    let got = r.u16_be("ID")?;
    if got != id {
        return Err(r.err("answer to another query"));
    }
    let flags = r.u16_be("flags")?;
    let rcode = u8::try_from(flags & 0x000f).unwrap_or(0);
    let questions = r.u16_be("QDCOUNT")?;
    let answers = r.u16_be("ANCOUNT")?;
    r.skip(4, "NSCOUNT and ARCOUNT")?;
    if rcode != 0 {
        return Ok(Answer::Error(rcode));
    }
    for _ in 0..questions {
        name(message, &mut r)?;
        r.skip(4, "QTYPE and QCLASS")?;
    }
    let mut records = Vec::new();
    for _ in 0..usize::from(answers).min(MAX_RECORDS) {
        name(message, &mut r)?;
        let kind = r.u16_be("TYPE")?;
        let class = r.u16_be("CLASS")?;
        r.skip(4, "TTL")?;
        let len = usize::from(r.u16_be("RDLENGTH")?);
        let base = r.offset();
        let rdata = r.bytes(len, "RDATA")?;
        if kind != TYPE_SRV || class != CLASS_IN {
            continue;
        }
        let mut d = Reader::with_base(rdata, base);
        let priority = d.u16_be("SRV priority")?;
        let weight = d.u16_be("SRV weight")?;
        let port = d.u16_be("SRV port")?;
        let target = name(message, &mut d)?;
        // [RFC 2782] a target of "." means the service is not available at this name.
        if !target.is_empty() {
            records.push(Srv {
                priority,
                weight,
                port,
                target,
            });
        }
    }
    records.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    Ok(Answer::Records(records))
}

/// [RFC 1035] 4.1.4 a domain name, following compression pointers into `message`.
fn name<'a>(message: &'a [u8], r: &mut Reader<'a>) -> WireResult<String> {
    let mut labels: Vec<String> = Vec::new();
    let mut cursor = r.clone();
    let mut jumped = false;
    for _ in 0..MAX_POINTERS {
        // INVARIANT: each pass reads one label or follows one pointer; labels end at a zero byte, and a
        // name holds at most 255 bytes, so 128 labels bound the inner loop.
        for _ in 0..128 {
            let len = cursor.u8("label length")?;
            match len {
                0 => {
                    if !jumped {
                        *r = cursor;
                    }
                    return Ok(labels.join("."));
                }
                1..=63 => {
                    let bytes = cursor.bytes(usize::from(len), "label")?;
                    labels.push(super::der::printable(bytes));
                }
                0xc0..=0xff => {
                    let low = cursor.u8("pointer")?;
                    let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                    if !jumped {
                        *r = cursor.clone();
                        jumped = true;
                    }
                    let rest = message.get(target..).ok_or(WireError {
                        offset: target,
                        what: "compression pointer",
                    })?;
                    cursor = Reader::with_base(rest, target);
                    break;
                }
                _ => return Err(cursor.err("label type")),
            }
        }
    }
    Err(r.err("too many compression pointers"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer with two SRV records, the second's target compressed against the question.
    fn answer(id: u16) -> Vec<u8> {
        let mut m = srv_query(id, "_kerberos._tcp.corp.example");
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 2; // ANCOUNT
        let rr = |m: &mut Vec<u8>, prio: u16, weight: u16, port: u16, target: &[u8]| {
            m.extend_from_slice(&[0xc0, 12]); // the question's name
            m.extend_from_slice(&TYPE_SRV.to_be_bytes());
            m.extend_from_slice(&CLASS_IN.to_be_bytes());
            m.extend_from_slice(&[0, 0, 0, 60]);
            m.extend_from_slice(&u16::try_from(6 + target.len()).unwrap().to_be_bytes());
            m.extend_from_slice(&prio.to_be_bytes());
            m.extend_from_slice(&weight.to_be_bytes());
            m.extend_from_slice(&port.to_be_bytes());
            m.extend_from_slice(target);
        };
        rr(&mut m, 10, 0, 88, b"\x04dc02\xc0\x1b");
        rr(&mut m, 0, 100, 88, b"\x04dc01\x04corp\x07example\x00");
        m
    }

    #[test]
    fn records_best_first_with_compressed_names() {
        let Answer::Records(records) = srv_answer(7, &answer(7)).unwrap() else {
            panic!("no records");
        };
        assert_eq!(
            records,
            vec![
                Srv {
                    priority: 0,
                    weight: 100,
                    port: 88,
                    target: "dc01.corp.example".to_owned()
                },
                Srv {
                    priority: 10,
                    weight: 0,
                    port: 88,
                    target: "dc02.corp.example".to_owned()
                },
            ]
        );
        assert!(srv_answer(8, &answer(7)).is_err());
    }

    #[test]
    fn errors_loops_and_cuts() {
        let mut nx = srv_query(1, "_kerberos._tcp.nowhere");
        nx[3] = 0x83;
        assert_eq!(srv_answer(1, &nx).unwrap(), Answer::Error(3));
        let whole = answer(7);
        for cut in 0..whole.len() {
            let _ = srv_answer(7, &whole[..cut]);
        }
        // A pointer to itself ends with an error, not a loop.
        let mut looped = srv_query(2, "x");
        looped[7] = 1;
        looped.extend_from_slice(&[0xc0, 19, 0, 33, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert!(srv_answer(2, &looped).is_err());
    }
}
