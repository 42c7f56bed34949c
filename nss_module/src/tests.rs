//! The exported functions' logic against a fake daemon on a temporary socket: the C interface
//! is called as glibc calls it, with a struct passwd and a caller-owned buffer.

use super::*;
use accountmap_wire::{decode_request, encode_response, frame_len, FRAME_HEADER_LEN};
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::os::unix::net::UnixListener;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

fn entry(name: &str, uid: u32) -> PasswdEntry {
    PasswdEntry {
        name: name.into(),
        uid,
        gid: 2000,
        gecos: "John Doe,,,".into(),
        dir: format!("/home/{name}"),
        shell: "/bin/bash".into(),
    }
}

/// A daemon that answers every request with `answer` (or, with `None`, accepts and never
/// answers), and reports the requests it saw.
struct FakeDaemon {
    socket: PathBuf,
    seen: mpsc::Receiver<Request>,
    _dir: TempDir,
}

/// A temporary directory removed on drop (no tempfile dependency for one use).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> TempDir {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "nss-accountmap-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

impl FakeDaemon {
    fn start(answer: Option<Response>) -> FakeDaemon {
        let dir = temp_dir("daemon");
        let socket = dir.0.join("s");
        let listener = UnixListener::bind(&socket).unwrap();
        let (tx, seen) = mpsc::channel();
        thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let Some(answer) = &answer else {
                    // Silent: keep the connection open, never answer.
                    held.push(stream);
                    continue;
                };
                let mut header = [0u8; FRAME_HEADER_LEN];
                if stream.read_exact(&mut header).is_err() {
                    continue;
                }
                let mut body = vec![0u8; frame_len(header).unwrap()];
                stream.read_exact(&mut body).unwrap();
                let _ = tx.send(decode_request(&body).unwrap());
                let _ = stream.write_all(&encode_response(answer));
            }
        });
        FakeDaemon {
            socket,
            seen,
            _dir: dir,
        }
    }
}

/// Calls the module as glibc does, with a buffer of `buflen` bytes; returns the status, the
/// errno it set (-1 if none) and, on success, the entry read back through the C pointers.
fn call(
    socket: &Path,
    name: &CStr,
    buflen: usize,
    timeout: Duration,
) -> (NssStatus, c_int, Option<PasswdEntry>, String) {
    let mut pw = MaybeUninit::<libc::passwd>::uninit();
    let mut buf = vec![0xAAu8; buflen];
    let mut errno: c_int = -1;
    // SAFETY: every pointer is valid for the sizes given and outlives the call.
    let status = unsafe {
        guard(&mut errno, || {
            getpwnam_at(
                socket,
                timeout,
                name.as_ptr(),
                pw.as_mut_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        })
    };
    if status != NSS_STATUS_SUCCESS {
        return (status, errno, None, String::new());
    }
    // SAFETY: on success every field was written, and the strings point into `buf`.
    let pw = unsafe { pw.assume_init() };
    let s = |p: *mut c_char| {
        let start = p as usize - buf.as_ptr() as usize;
        assert!(start < buf.len(), "pointer outside the caller's buffer");
        // SAFETY: the module wrote a NUL-terminated string at `p`, inside `buf`.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
    };
    let got = PasswdEntry {
        name: s(pw.pw_name),
        uid: pw.pw_uid,
        gid: pw.pw_gid,
        gecos: s(pw.pw_gecos),
        dir: s(pw.pw_dir),
        shell: s(pw.pw_shell),
    };
    (status, errno, Some(got), s(pw.pw_passwd))
}

#[test]
fn an_alias_gets_the_local_entry() {
    let d = FakeDaemon::start(Some(Response::Passwd(Some(entry("jdoe", 1003)))));
    let (status, errno, got, passwd) = call(&d.socket, c"John.Doe@Company.com", 1024, TIMEOUT);
    assert_eq!((status, errno), (NSS_STATUS_SUCCESS, -1), "errno untouched");
    assert_eq!(got, Some(entry("jdoe", 1003)));
    assert_eq!(passwd, "x");
    assert_eq!(
        d.seen.recv_timeout(Duration::from_secs(1)).unwrap(),
        Request::Getpwnam {
            name: "John.Doe@Company.com".into()
        }
    );
}

#[test]
fn a_buffer_one_byte_short_is_erange_and_an_exact_one_fits() {
    let pw = entry("jdoe", 1003);
    let need = image(&pw).0.len();
    assert_eq!(need, "jdoe x John Doe,,, /home/jdoe /bin/bash ".len());
    let d = FakeDaemon::start(Some(Response::Passwd(Some(pw.clone()))));
    let (status, errno, _, _) = call(&d.socket, c"alias", need - 1, TIMEOUT);
    assert_eq!((status, errno), (NSS_STATUS_TRYAGAIN, libc::ERANGE));
    let (status, _, got, _) = call(&d.socket, c"alias", need, TIMEOUT);
    assert_eq!((status, got), (NSS_STATUS_SUCCESS, Some(pw)));
    let (status, errno, _, _) = call(&d.socket, c"alias", 0, TIMEOUT);
    assert_eq!((status, errno), (NSS_STATUS_TRYAGAIN, libc::ERANGE));
}

#[test]
fn unaligned_buffers_are_fine() {
    // glibc hands out buffers at any offset; the module copies bytes only.
    let d = FakeDaemon::start(Some(Response::Passwd(Some(entry("jdoe", 1003)))));
    let mut pw = MaybeUninit::<libc::passwd>::uninit();
    let mut buf = vec![0u8; 257];
    // SAFETY: the buffer pointer is one byte into a 257-byte allocation, 256 bytes remain.
    let status = unsafe {
        getpwnam_at(
            &d.socket,
            TIMEOUT,
            c"alias".as_ptr(),
            pw.as_mut_ptr(),
            buf.as_mut_ptr().add(1).cast(),
            256,
        )
    };
    assert_eq!(status, (NSS_STATUS_SUCCESS, None));
    // SAFETY: success wrote every field.
    let pw = unsafe { pw.assume_init() };
    // SAFETY: pw_name points at a NUL-terminated string in `buf`.
    assert_eq!(unsafe { CStr::from_ptr(pw.pw_name) }, c"jdoe");
    assert_eq!(pw.pw_name as usize, buf.as_ptr() as usize + 1);
}

#[test]
fn no_entry_is_notfound() {
    let d = FakeDaemon::start(Some(Response::Passwd(None)));
    let (status, errno, _, _) = call(&d.socket, c"alice", 1024, TIMEOUT);
    assert_eq!((status, errno), (NSS_STATUS_NOTFOUND, libc::ENOENT));
}

#[test]
fn unusable_entries_are_notfound() {
    let mut with_nul = entry("jdoe", 1003);
    with_nul.gecos = "John\0Doe".into();
    let mut nul_name = entry("jdoe", 1003);
    nul_name.name = "jd\0oe".into();
    for bad in [with_nul, nul_name, entry("root", 0), entry("", 1003)] {
        let d = FakeDaemon::start(Some(Response::Passwd(Some(bad.clone()))));
        let (status, errno, _, _) = call(&d.socket, c"alias", 1024, TIMEOUT);
        assert_eq!(
            (status, errno),
            (NSS_STATUS_NOTFOUND, libc::ENOENT),
            "{bad:?}"
        );
    }
}

#[test]
fn refusals_and_other_answers_are_unavail() {
    for answer in [
        Response::Error("rate limited".into()),
        Response::Flushed(1),
        Response::Status(vec![]),
    ] {
        let d = FakeDaemon::start(Some(answer.clone()));
        let (status, errno, _, _) = call(&d.socket, c"alias", 1024, TIMEOUT);
        assert_eq!(
            (status, errno),
            (NSS_STATUS_UNAVAIL, libc::ENOENT),
            "{answer:?}"
        );
    }
}

#[test]
fn no_daemon_is_unavail_at_once() {
    let dir = temp_dir("none");
    let start = Instant::now();
    let (status, errno, _, _) = call(&dir.0.join("missing.sock"), c"alias", 1024, TIMEOUT);
    assert_eq!((status, errno), (NSS_STATUS_UNAVAIL, libc::ENOENT));
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_silent_daemon_is_unavail_by_the_deadline() {
    let d = FakeDaemon::start(None);
    let start = Instant::now();
    let (status, _, _, _) = call(&d.socket, c"alias", 1024, TIMEOUT);
    let took = start.elapsed();
    assert_eq!(status, NSS_STATUS_UNAVAIL);
    assert!(took >= TIMEOUT && took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn unusable_names_never_reach_the_daemon() {
    let d = FakeDaemon::start(Some(Response::Passwd(Some(entry("jdoe", 1003)))));
    let long = CString::new("a".repeat(MAX_NAME_LEN + 1)).unwrap();
    for name in [c"", c"\xff\xfe", long.as_c_str()] {
        let (status, errno, _, _) = call(&d.socket, name, 1024, TIMEOUT);
        assert_eq!(
            (status, errno),
            (NSS_STATUS_NOTFOUND, libc::ENOENT),
            "{name:?}"
        );
    }
    assert!(d.seen.try_recv().is_err(), "the daemon was asked");
}

#[test]
fn null_arguments_are_refused_without_a_crash() {
    let d = FakeDaemon::start(Some(Response::Passwd(Some(entry("jdoe", 1003)))));
    let mut pw = MaybeUninit::<libc::passwd>::uninit();
    let mut buf = [0 as c_char; 64];
    // SAFETY: NULL where the function checks for NULL; everything else valid.
    unsafe {
        assert_eq!(
            getpwnam_at(
                &d.socket,
                TIMEOUT,
                ptr::null(),
                pw.as_mut_ptr(),
                buf.as_mut_ptr(),
                64
            ),
            (NSS_STATUS_NOTFOUND, Some(libc::ENOENT))
        );
        assert_eq!(
            getpwnam_at(
                &d.socket,
                TIMEOUT,
                c"a".as_ptr(),
                ptr::null_mut(),
                buf.as_mut_ptr(),
                64
            ),
            (NSS_STATUS_UNAVAIL, Some(libc::EINVAL))
        );
        assert_eq!(
            _nss_accountmap_getpwuid_r(
                1003,
                pw.as_mut_ptr(),
                buf.as_mut_ptr(),
                64,
                ptr::null_mut()
            ),
            NSS_STATUS_NOTFOUND
        );
    }
}

#[test]
fn uid_lookups_and_enumeration_find_nothing() {
    let mut pw = MaybeUninit::<libc::passwd>::uninit();
    let mut buf = [0 as c_char; 64];
    let mut errno = 0;
    // SAFETY: valid pointers for the sizes given.
    unsafe {
        assert_eq!(
            _nss_accountmap_getpwuid_r(1003, pw.as_mut_ptr(), buf.as_mut_ptr(), 64, &mut errno),
            NSS_STATUS_NOTFOUND
        );
        assert_eq!(errno, libc::ENOENT);
        assert_eq!(_nss_accountmap_setpwent(0), NSS_STATUS_SUCCESS);
        errno = 0;
        assert_eq!(
            _nss_accountmap_getpwent_r(pw.as_mut_ptr(), buf.as_mut_ptr(), 64, &mut errno),
            NSS_STATUS_NOTFOUND
        );
        assert_eq!(errno, libc::ENOENT);
        assert_eq!(_nss_accountmap_endpwent(), NSS_STATUS_SUCCESS);
    }
}

#[test]
fn a_panic_is_unavail_not_an_unwind_into_c() {
    let mut errno = 0;
    // SAFETY: `errno` is writable.
    let status = unsafe { guard(&mut errno, || panic!("a bug")) };
    assert_eq!((status, errno), (NSS_STATUS_UNAVAIL, libc::ENOENT));
}

#[test]
fn a_cached_alias_is_answered_without_the_daemon_and_a_retired_file_is_left() {
    use accountmap_wire::memcache::{self, WriteMap};
    // A silent daemon: any socket lookup would take the whole deadline and fail.
    let d = FakeDaemon::start(None);
    let path = memcache::path_for(&d.socket).unwrap();
    let mut file = WriteMap::create(&path).unwrap();
    let now = memcache::now_ns();
    let mut w = file.writer().unwrap();
    assert!(w.insert(
        b"John.Doe@Company.com",
        &entry("jdoe", 1003),
        now + 60_000_000_000,
        now
    ));
    // Unusable entries are refused from the cache as from the socket.
    assert!(w.insert(b"boss", &entry("root", 0), now + 60_000_000_000, now));
    let start = Instant::now();
    let (status, _, got, passwd) = call(&d.socket, c"John.Doe@Company.com", 1024, TIMEOUT);
    assert_eq!(status, NSS_STATUS_SUCCESS);
    assert_eq!((got, passwd.as_str()), (Some(entry("jdoe", 1003)), "x"));
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    // A short buffer is ERANGE, as from the socket.
    let (status, errno, _, _) = call(&d.socket, c"John.Doe@Company.com", 8, TIMEOUT);
    assert_eq!((status, errno), (NSS_STATUS_TRYAGAIN, libc::ERANGE));
    // Not cached, or unusable: the socket (silent here) is asked.
    for name in [c"other@company.com", c"boss"] {
        let start = Instant::now();
        let (status, _, _, _) = call(&d.socket, name, 1024, TIMEOUT);
        assert_eq!(status, NSS_STATUS_UNAVAIL, "{name:?}");
        assert!(
            start.elapsed() >= Duration::from_millis(500),
            "{name:?}: {:?}",
            start.elapsed()
        );
    }
    // A stopped daemon retires its file: the module stops using it at once.
    file.retire_and_remove();
    let (status, _, _, _) = call(&d.socket, c"John.Doe@Company.com", 1024, TIMEOUT);
    assert_eq!(status, NSS_STATUS_UNAVAIL);
}

#[test]
fn a_replaced_cache_file_is_mapped_again() {
    use accountmap_wire::memcache::{self, WriteMap};
    let d = FakeDaemon::start(None);
    let path = memcache::path_for(&d.socket).unwrap();
    let put = |file: &mut WriteMap, who: &str, uid: u32| {
        let now = memcache::now_ns();
        let mut w = file.writer().unwrap();
        assert!(w.insert(b"alias", &entry(who, uid), now + 60_000_000_000, now));
    };
    let mut first = WriteMap::create(&path).unwrap();
    put(&mut first, "jdoe", 1003);
    let (status, _, got, _) = call(&d.socket, c"alias", 1024, TIMEOUT);
    assert_eq!(
        (status, got),
        (NSS_STATUS_SUCCESS, Some(entry("jdoe", 1003)))
    );
    // A restarted daemon: a new file renamed over the old one, which is marked retired. This
    // process still maps the old one; it must notice and map the new one.
    let mut second = WriteMap::create(&path).unwrap();
    put(&mut second, "alice", 1001);
    let (status, _, got, _) = call(&d.socket, c"alias", 1024, TIMEOUT);
    assert_eq!(
        (status, got),
        (NSS_STATUS_SUCCESS, Some(entry("alice", 1001)))
    );
    drop(first);
}
