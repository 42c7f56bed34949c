//! The daemon's request parser and the module's response parser on arbitrary bodies: never a
//! panic, and whatever decodes re-encodes to a frame that decodes to the same value.
#![no_main]

use accountmap_wire::{
    decode_request, decode_response, encode_request, encode_response, frame_len, FRAME_HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= FRAME_HEADER_LEN {
        let mut header = [0u8; FRAME_HEADER_LEN];
        header.copy_from_slice(&data[..FRAME_HEADER_LEN]);
        let _ = frame_len(header);
    }
    if let Ok(req) = decode_request(data) {
        let frame = encode_request(&req);
        assert_eq!(decode_request(&frame[FRAME_HEADER_LEN..]).ok(), Some(req));
    }
    if let Ok(resp) = decode_response(data) {
        let frame = encode_response(&resp);
        assert_eq!(decode_response(&frame[FRAME_HEADER_LEN..]).ok(), Some(resp));
    }
});
