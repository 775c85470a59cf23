//! Any bytes given to the frame decoders yield a message or an error, never a panic; a decoded
//! message re-encodes to a frame that decodes to the same message.
#![no_main]

use kokuban_protocol::{decode_client, decode_server, encode_client, encode_server};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode_client(data) {
        assert_eq!(decode_client(&encode_client(&msg)).as_ref(), Ok(&msg));
    }
    if let Ok(msg) = decode_server(data) {
        assert_eq!(decode_server(&encode_server(&msg)).as_ref(), Ok(&msg));
    }
});
