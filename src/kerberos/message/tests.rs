use super::*;

/// [RFC 4120] 5.2.2 a PrincipalName of `name_type` with these components.
fn principal_name(name_type: u8, parts: &[&str]) -> Vec<u8> {
    let mut strings = Vec::new();
    for p in parts {
        strings.push(0x1b);
        strings.push(p.len() as u8);
        strings.extend_from_slice(p.as_bytes());
    }
    let mut seq_of = vec![0x30, strings.len() as u8];
    seq_of.extend(strings);
    let mut content = vec![0xa0, 3, 0x02, 1, name_type, 0xa1, seq_of.len() as u8];
    content.extend(seq_of);
    let mut out = vec![0x30, content.len() as u8];
    out.extend(content);
    out
}

#[test]
fn principals_read_as_mit_writes_them() {
    let service = principal_name(2, &["TERMSRV", "rdp01.corp.example"]);
    assert_eq!(
        principal(Reader::new(&service), Some("CORP.EXAMPLE")).unwrap(),
        "TERMSRV/rdp01.corp.example@CORP.EXAMPLE"
    );
    // [RFC 6806] 5 NT-ENTERPRISE: the user's UPN in one component, its '@' escaped.
    let enterprise = principal_name(10, &["admin@ACME.COM"]);
    assert_eq!(
        principal(Reader::new(&enterprise), Some("ACME.COM")).unwrap(),
        "admin\\@ACME.COM@ACME.COM"
    );
}
