//! `rdptrace explain`: the text of the pure functions (snapshots), argument handling, and the built
//! binary's output and exit codes.

mod support;

use rdptrace::codes::Table;
use rdptrace::explain::{
    ExplainArgs, ExplainError, Request, explain_one, explain_pair, request, resolve,
};
use support::{output, rdptrace};

fn args(codes: &[&str]) -> ExplainArgs {
    ExplainArgs {
        codes: codes.iter().map(|s| (*s).to_owned()).collect(),
        errinfo: None,
        neg_failure: None,
        ntstatus: None,
        license: None,
        disc_reason: None,
        extended: None,
        tls_alert: None,
        krb: None,
    }
}

#[test]
fn snapshot_0x904_0x7() {
    insta::assert_snapshot!("pair_0x904_0x7", explain_pair(0x904, 0x7));
}

#[test]
fn snapshot_other_pairs() {
    insta::assert_snapshot!("pair_0x904_0x9", explain_pair(0x904, 0x9));
    insta::assert_snapshot!("pair_0x204_0x0", explain_pair(0x204, 0x0));
    insta::assert_snapshot!("pair_0x904_0x10c9", explain_pair(0x904, 0x10C9));
}

#[test]
fn snapshot_lookups() {
    insta::assert_snapshot!(
        "errinfo_0x7",
        explain_one(Table::ErrorInfo, 0x7).unwrap_or_default()
    );
    insta::assert_snapshot!(
        "ntstatus_logon_failure",
        explain_one(Table::NtStatus, 0xC000_006D).unwrap_or_default()
    );
    insta::assert_snapshot!(
        "license_no_license_server",
        explain_one(Table::LicenseError, 0x6).unwrap_or_default()
    );
    insta::assert_snapshot!(
        "tls_alert_40",
        explain_one(Table::TlsAlert, 40).unwrap_or_default()
    );
    insta::assert_snapshot!(
        "extended_protocol_range",
        explain_one(Table::ExtendedReason, 0x10C9).unwrap_or_default()
    );
    insta::assert_snapshot!(
        "neg_failure_5",
        explain_one(Table::NegFailure, 5).unwrap_or_default()
    );
}

#[test]
fn the_pair_names_both_paths() {
    let text = explain_pair(0x904, 0x7);
    assert!(text.contains("ambiguous"), "{text}");
    assert!(
        text.contains(
            "Set Error Info PDU with errorInfo 0x00000007 (ERRINFO_SERVER_DENIED_CONNECTION)"
        ),
        "{text}"
    );
    assert!(text.contains("basis: specified"), "{text}");
    assert!(
        text.contains("still pending and no error info had arrived"),
        "{text}"
    );
    assert!(text.contains("basis: reported"), "{text}");
    assert!(text.contains("rdptrace probe"), "{text}");
    assert!(text.contains("rdptrace replay"), "{text}");
    assert!(text.contains("STATUS_VALID_CLIENT"), "{text}");
    // Another errorInfo after a close is not ambiguous.
    assert!(!explain_pair(0x904, 0x9).contains("ambiguous"));
}

#[test]
fn unknown_codes_give_none() {
    assert!(explain_one(Table::ErrorInfo, 0x1234).is_none());
    assert!(explain_one(Table::TlsAlert, 7).is_none());
    // In the protocol range, but no errorInfo has the number; and below the range.
    assert!(explain_one(Table::ExtendedReason, 0x1001).is_none());
    assert!(explain_one(Table::ExtendedReason, 0x200).is_none());
}

#[test]
fn codes_are_read_as_hex_decimal_negative_or_names() {
    let hex = request(&args(&["0x904", "0x7"]));
    let dec = request(&args(&["2308", "7"]));
    let names = request(&args(&[
        "disconnectReasonAtClientWinsockFDCLOSE",
        "exDiscReasonServerDeniedConnection",
    ]));
    let want = Ok(Request::Pair {
        disc: 0x904,
        ext: Some(7),
    });
    assert_eq!(hex, want);
    assert_eq!(dec, want);
    assert_eq!(names, want);
    assert_eq!(resolve(Table::NtStatus, "-1073741714"), Ok(0xC000_006E));
    assert_eq!(resolve(Table::NtStatus, "0xC000_006D"), Ok(0xC000_006D));
    assert_eq!(
        resolve(Table::ErrorInfo, "ERRINFO_SERVER_DENIED_CONNECTION"),
        Ok(7)
    );
    assert_eq!(resolve(Table::TlsAlert, "handshake_failure"), Ok(40));
    assert!(matches!(
        resolve(Table::ErrorInfo, "ERRINFO_NO_SUCH_THING"),
        Err(ExplainError::Unknown(_))
    ));
    for bad in [
        "0xZZ",
        "12abc",
        "0x1_0000_0000",
        "4294967296",
        "-",
        "a b",
        "",
    ] {
        assert!(
            matches!(resolve(Table::ErrorInfo, bad), Err(ExplainError::Usage(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn argument_combinations() {
    assert!(matches!(request(&args(&[])), Err(ExplainError::Usage(_))));
    assert!(matches!(
        request(&args(&["1", "2", "3"])),
        Err(ExplainError::Usage(_))
    ));
    let mut both = args(&["0x904"]);
    both.errinfo = Some("7".to_owned());
    assert!(matches!(request(&both), Err(ExplainError::Usage(_))));
    let mut two = args(&[]);
    two.errinfo = Some("7".to_owned());
    two.ntstatus = Some("0".to_owned());
    assert!(matches!(request(&two), Err(ExplainError::Usage(_))));
    let mut one = args(&[]);
    one.license = Some("ERR_NO_LICENSE_SERVER".to_owned());
    assert_eq!(
        request(&one),
        Ok(Request::One {
            table: Table::LicenseError,
            code: 6
        })
    );
    assert_eq!(
        request(&args(&["0x904"])),
        Ok(Request::Pair {
            disc: 0x904,
            ext: None
        })
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn binary_explains_0x904_0x7() {
    for argv in [["explain", "0x904", "0x7"], ["explain", "2308", "7"]] {
        let out = output(rdptrace().args(argv));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("Set Error Info PDU with errorInfo 0x00000007"),
            "{stdout}"
        );
        assert!(stdout.contains("still pending"), "{stdout}");
        assert_eq!(stdout, explain_pair(0x904, 0x7));
    }
}

#[test]
fn binary_looks_codes_up() {
    let out = output(rdptrace().args(["explain", "--errinfo", "ERRINFO_SERVER_DENIED_CONNECTION"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("server denied the connection"));
    let out = output(rdptrace().args(["explain", "--ntstatus", "-1073741714"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("STATUS_ACCOUNT_RESTRICTION"));
    let out = output(rdptrace().args(["explain", "--tls-alert", "40"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("handshake_failure"));
}

#[test]
fn binary_exit_codes() {
    let out = output(rdptrace().args(["explain", "--errinfo", "0x1234"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "rdptrace: 0x00001234 is not a documented errorInfo value"
    );
    let out = output(rdptrace().args(["explain", "0x1234", "0x9999"]));
    assert_eq!(out.status.code(), Some(1));
    for argv in [
        &["explain", "0xZZ", "0x7"][..],
        &["explain"][..],
        &["explain", "--errinfo", "7", "--ntstatus", "0"][..],
        &["explain", "--no-such-flag"][..],
    ] {
        let out = output(rdptrace().args(argv));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{argv:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(!err.trim().is_empty(), "{argv:?}");
    }
    let out = output(rdptrace().args(["explain", "0xZZ"]));
    let err = text(&out.stderr);
    assert!(err.starts_with("rdptrace: invalid code"), "{err}");
    assert!(!err.trim_end().ends_with('.'), "{err}");
}
