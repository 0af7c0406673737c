//! The codec's unit tests: decode(encode(x)) == x, truncated and hostile input, the layouts peers read.

mod ndr;
mod pdu;
mod rts;
