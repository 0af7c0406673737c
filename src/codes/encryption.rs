//! [2.2.1.4.3] Server Security Data: encryptionMethod and encryptionLevel values (the client's
//! encryptionMethods in [2.2.1.3.3] uses the same method flags).

use super::CodeEntry;

const S: &str = "MS-RDPBCGR 2.2.1.4.3";

/// encryptionMethod values; flags in the client's encryptionMethods.
pub static METHOD_ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: 0x0000_0000,
        name: "ENCRYPTION_METHOD_NONE",
        meaning: "no encryption and no MACs",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0001,
        name: "ENCRYPTION_METHOD_40BIT",
        meaning: "RC4 with 40-bit session keys",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0002,
        name: "ENCRYPTION_METHOD_128BIT",
        meaning: "RC4 with 128-bit session keys",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0008,
        name: "ENCRYPTION_METHOD_56BIT",
        meaning: "RC4 with 56-bit session keys",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0010,
        name: "ENCRYPTION_METHOD_FIPS",
        meaning: "FIPS 140-1 compliant encryption and MACs",
        section: S,
    },
];

/// encryptionLevel values ([5.3.1] describes each level).
pub static LEVEL_ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: 0x0000_0000,
        name: "ENCRYPTION_LEVEL_NONE",
        meaning: "no encryption",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0001,
        name: "ENCRYPTION_LEVEL_LOW",
        meaning: "only client-to-server data is encrypted",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0002,
        name: "ENCRYPTION_LEVEL_CLIENT_COMPATIBLE",
        meaning: "both directions, at the strongest method the client supports",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0003,
        name: "ENCRYPTION_LEVEL_HIGH",
        meaning: "both directions, at the server's strongest method",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0004,
        name: "ENCRYPTION_LEVEL_FIPS",
        meaning: "both directions, FIPS 140-1 methods only",
        section: S,
    },
];
