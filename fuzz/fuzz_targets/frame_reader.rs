//! The frame reader the daemon runs on every connection, fed arbitrary bytes through a real
//! Unix socket pair (the peer then closes): it returns a frame, an error or "closed", never
//! panics, never returns more than MAX_FRAME bytes, and never blocks past its deadline.
#![no_main]

use accountmap_wire::{decode_request, FrameReader, MAX_FRAME};
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let Ok((mut a, mut b)) = UnixStream::pair() else {
        return;
    };
    // The socket buffer takes well over what a test case holds; longer inputs are cut.
    let data = &data[..data.len().min(64 * 1024)];
    if a.write_all(data).is_err() {
        return;
    }
    drop(a);
    let mut reader = FrameReader::new();
    let deadline = Instant::now() + Duration::from_millis(200);
    for _ in 0..4 {
        match reader.next(&mut b, deadline, Some(Duration::from_millis(200))) {
            Ok(body) => {
                assert!(body.len() <= MAX_FRAME);
                let _ = decode_request(&body);
            }
            Err(_) => break,
        }
    }
    assert!(Instant::now() < deadline + Duration::from_secs(1));
});
